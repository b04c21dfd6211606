import { canonicalize, fingerprintOf, fromBase64Url, fromBase64UrlExact, isRecord, utf8Decode } from '../../protocol/index.js';
import { ApproverError } from './errors.js';

/**
 * Parses the invite token from an enrollment link `<app origin>/#enroll=TOKEN`.
 * The format is the one `stillvault approver invite NAME` writes (src/cli/invite.ts):
 * `svinv1.` + base64url(JCS of {v, broker, org, orgName, identityKey, invite,
 * code, kind, name, expires}). That parser imports node:crypto, so this is a
 * browser-safe copy of its checks, plus two more: the JSON must be canonical
 * and the invite must not have expired.
 */

export const INVITE_PREFIX = 'svinv1.';
const MAX_TOKEN_LENGTH = 4096;
const MEMBERS = 'broker,code,expires,identityKey,invite,kind,name,org,orgName,v';

export interface Invite {
  v: 1;
  broker: string;
  org: string;
  orgName: string;
  identityKey: string;
  invite: string;
  code: string;
  kind: 'device';
  name: string;
  expires: number;
}

function invalid(reason: string): ApproverError {
  return new ApproverError('invite_invalid', `This enrollment link is not valid: ${reason}. Ask your admin for a new link.`);
}

function stringField(record: Record<string, unknown>, name: string, max: number): string {
  const value = record[name];
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw invalid(`${name} is missing or too long`);
  return value;
}

/** Decodes and checks an invite token. Throws ApproverError('invite_invalid' | 'invite_expired' | 'untrusted_signer'). */
export function parseInvite(text: string, now: number): Invite {
  const trimmed = text.trim();
  if (!trimmed.startsWith(INVITE_PREFIX)) throw invalid(`the token must start with ${INVITE_PREFIX}`);
  if (trimmed.length > MAX_TOKEN_LENGTH) throw invalid('the token is too long');
  let json: string;
  let value: unknown;
  try {
    json = utf8Decode(fromBase64Url(trimmed.slice(INVITE_PREFIX.length), 'invite token'));
    value = JSON.parse(json);
  } catch {
    throw invalid('the token is not base64url-encoded JSON');
  }
  if (!isRecord(value)) throw invalid('the token is not a JSON object');
  const members = Object.keys(value).sort().join(',');
  if (members !== MEMBERS) throw invalid(`unexpected members ${members}`);
  if (canonicalize(value) !== json) throw invalid('the token is not canonical JSON');
  if (value.v !== 1) throw invalid(`unsupported version ${JSON.stringify(value.v)}`);
  if (value.kind !== 'device') throw invalid('it enrolls a daemon host, not an approver');
  if (typeof value.expires !== 'number' || !Number.isSafeInteger(value.expires)) throw invalid('expires must be an integer');

  const invite: Invite = {
    v: 1,
    broker: stringField(value, 'broker', 2048),
    org: stringField(value, 'org', 43),
    orgName: stringField(value, 'orgName', 128),
    identityKey: stringField(value, 'identityKey', 43),
    invite: stringField(value, 'invite', 64),
    code: stringField(value, 'code', 64),
    kind: 'device',
    name: stringField(value, 'name', 128),
    expires: value.expires,
  };
  if (!/^https?:\/\//.test(invite.broker)) throw invalid('broker must be an http or https URL');
  if (now > invite.expires) throw new ApproverError('invite_expired', 'This enrollment link has expired. Ask your admin for a new one.');

  let identityKey: Uint8Array;
  try {
    identityKey = fromBase64UrlExact(invite.identityKey, 32, 'identityKey');
  } catch {
    throw invalid('identityKey is not a 32-byte base64url key');
  }
  const fingerprint = fingerprintOf(identityKey);
  if (fingerprint !== invite.org) {
    throw new ApproverError('untrusted_signer', `The link names org ${invite.org}, but its identity key has fingerprint ${fingerprint}. Do not use it; ask your admin for a new link over a channel you trust.`);
  }
  return invite;
}
