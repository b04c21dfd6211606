import {
  canonicalize, fingerprintOf, fromBase64Url, fromBase64UrlExact, isRecord, sha256, toBase64Url, utf8Decode, utf8Encode,
} from '../protocol/index.js';
import { CliError, USAGE_EXIT_CODE } from './errors.js';

/**
 * Invite tokens: what an admin hands to a new approver or daemon host out of
 * band. `svinv1.` + base64url(JCS(InviteToken)). The token carries the
 * one-time code, so whoever holds it can enroll once; it also carries the Org
 * Identity public key, which the new member pins after checking that the org
 * id is its fingerprint. docs/enrollment.md describes the format.
 * This file is browser-safe (no node: imports), because the web approver
 * parses enrollment links with decodeInviteToken too.
 */

export const INVITE_PREFIX = 'svinv1.';
const CODE_BYTES = 32;
const MAX_TOKEN_LENGTH = 4096;

export interface InviteToken {
  v: 1;
  broker: string;
  org: string;
  orgName: string;
  identityKey: string;
  invite: string;
  code: string;
  kind: 'device' | 'consumer';
  name: string;
  expires: number;
}

/** Makes a one-time invite code: 32 random bytes as base64url. */
export function newInviteCode(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(CODE_BYTES)));
}

/** Returns what the broker stores for a code: base64url(SHA-256(UTF-8 code)). */
export function inviteCodeHash(code: string): string {
  return toBase64Url(sha256(utf8Encode(code)));
}

export function encodeInviteToken(token: InviteToken): string {
  return INVITE_PREFIX + toBase64Url(utf8Encode(canonicalize(token)));
}

function invalid(reason: string): CliError {
  return new CliError('invite_invalid', `invalid invite token: ${reason}`, {
    exitCode: USAGE_EXIT_CODE,
    hint: 'ask the admin for a new token (`stillvault approver invite NAME` or `stillvault daemon invite NAME`) and paste it whole',
  });
}

function stringField(record: Record<string, unknown>, name: string, max: number): string {
  const value = record[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw invalid(`${name} is missing or too long`);
  return value;
}

/**
 * Decodes and checks an invite token: prefix, encoding, canonical JSON with
 * exactly the expected members, and that the org id is the fingerprint of
 * the Org Identity key it carries.
 * Throws CliError('invite_invalid') or, for a mismatched key,
 * CliError('untrusted_signer').
 */
export function decodeInviteToken(text: string, expectedKind: InviteToken['kind']): InviteToken {
  const trimmed = text.trim();
  if (!trimmed.startsWith(INVITE_PREFIX)) throw invalid(`it must start with ${INVITE_PREFIX}`);
  if (trimmed.length > MAX_TOKEN_LENGTH) throw invalid('it is too long');
  let json: string;
  let value: unknown;
  try {
    json = utf8Decode(fromBase64Url(trimmed.slice(INVITE_PREFIX.length), 'invite token'));
    value = JSON.parse(json);
  } catch {
    throw invalid('it is not base64url-encoded JSON');
  }
  if (!isRecord(value)) throw invalid('it is not a JSON object');
  const members = Object.keys(value).sort().join(',');
  if (members !== 'broker,code,expires,identityKey,invite,kind,name,org,orgName,v') throw invalid(`unexpected members ${members}`);
  if (canonicalize(value) !== json) throw invalid('it is not canonical JSON');
  if (value.v !== 1) throw invalid(`unsupported version ${JSON.stringify(value.v)}`);
  const kind = value.kind;
  if (kind !== 'device' && kind !== 'consumer') throw invalid('kind must be device or consumer');
  if (kind !== expectedKind) {
    throw new CliError('invite_wrong_kind', `this invite is for ${kind === 'device' ? 'an approver' : 'a daemon'}`, {
      exitCode: USAGE_EXIT_CODE,
      hint: kind === 'device' ? 'run `stillvault approver enroll --invite TOKEN`' : 'run `stillvault daemon enroll --invite TOKEN`',
    });
  }
  if (typeof value.expires !== 'number' || !Number.isSafeInteger(value.expires)) throw invalid('expires must be an integer');
  const token: InviteToken = {
    v: 1,
    broker: stringField(value, 'broker', 2048),
    org: stringField(value, 'org', 43),
    orgName: stringField(value, 'orgName', 128),
    identityKey: stringField(value, 'identityKey', 43),
    invite: stringField(value, 'invite', 64),
    code: stringField(value, 'code', 64),
    kind,
    name: stringField(value, 'name', 128),
    expires: value.expires,
  };
  if (!/^https?:\/\//.test(token.broker)) throw invalid('broker must be an http or https URL');

  let identityKey: Uint8Array;
  try {
    identityKey = fromBase64UrlExact(token.identityKey, 32, 'identityKey');
  } catch {
    throw invalid('identityKey is not a 32-byte base64url key');
  }
  const fingerprint = fingerprintOf(identityKey);
  if (fingerprint !== token.org) {
    throw new CliError('untrusted_signer', `invite token names org ${token.org}, but its identity key has fingerprint ${fingerprint}`, {
      hint: 'do not use this token; ask the admin for a new one over a channel you trust',
    });
  }
  return token;
}
