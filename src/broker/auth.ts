import type { IncomingMessage } from 'node:http';
import { SIGNATURE_CONTEXT } from '../protocol/contexts.js';
import { constantTimeEqual, fromBase64Url, fromBase64UrlExact, toBase64Url } from '../protocol/encoding.js';
import { sha256 } from '../protocol/hash.js';
import type { SigningPublicKey } from '../protocol/keys.js';
import { signedMessage } from '../protocol/signed.js';
import { nowSeconds, type BrokerContext, type Principal, type Role } from './context.js';
import { BrokerError } from './errors.js';
import { requireId, requireOneOf, requireRecord, requireString } from './shape.js';
import { orgIdentityKey, validCertificate } from './store.js';

const CHALLENGE_LIFETIME_SECONDS = 60;
const ROLES: readonly Role[] = ['admin', 'device', 'consumer'];

function randomToken(): string {
  return toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(32)));
}

function hashToken(token: string): string {
  return toBase64Url(sha256(fromBase64UrlExact(token, 32, 'token')));
}

function authFailed(message: string): BrokerError {
  return new BrokerError(401, 'auth_failed', message);
}

function parseIdentity(input: unknown): Principal {
  const record = requireRecord(input, 'body');
  return { org: requireString(record, 'org', 64), role: requireOneOf(record, 'role', ROLES), id: requireId(record, 'id') };
}

/** POST /v1/auth/challenge: issues a single-use challenge for one principal. */
export async function issueChallenge(ctx: BrokerContext, input: unknown): Promise<{ challenge: string; audience: string; expires: number }> {
  const identity = parseIdentity(input);
  await orgIdentityKey(ctx.db, identity.org);
  const challenge = randomToken();
  const expires = nowSeconds() + CHALLENGE_LIFETIME_SECONDS;
  await ctx.db.write(async (tx) => {
    await tx.run('DELETE FROM challenges WHERE expires < ?', [nowSeconds()]);
    await tx.run('INSERT INTO challenges (challenge, org, role, principal, expires) VALUES (?, ?, ?, ?, ?)',
      [challenge, identity.org, identity.role, identity.id, expires]);
  });
  return { challenge, audience: ctx.audience, expires };
}

/** Returns the key that authenticates a principal and how long it stays valid, or throws auth_failed. */
async function principalKey(ctx: BrokerContext, identity: Principal): Promise<{ key: SigningPublicKey; expires: number }> {
  if (identity.role === 'admin') {
    if (identity.id !== identity.org) throw authFailed('admin id must be the org fingerprint');
    return { key: await orgIdentityKey(ctx.db, identity.org), expires: Number.MAX_SAFE_INTEGER };
  }
  const found = await validCertificate(ctx.db, identity.org, identity.role, identity.id);
  if (found === undefined) throw authFailed(`no valid ${identity.role} certificate for ${identity.id}`);
  return { key: found.authKey, expires: found.cert.body.expires };
}

/** POST /v1/auth/token: checks the signed challenge and issues a bearer token. */
export async function issueToken(ctx: BrokerContext, input: unknown): Promise<{ token: string; expires: number }> {
  const identity = parseIdentity(input);
  const record = requireRecord(input, 'body');
  const challenge = requireString(record, 'challenge', 64);
  const signature = fromBase64Url(requireString(record, 'sig', 128), 'sig');

  const consumed = await ctx.db.write((tx) => tx.run(
    'DELETE FROM challenges WHERE challenge = ? AND org = ? AND role = ? AND principal = ? AND expires >= ?',
    [challenge, identity.org, identity.role, identity.id, nowSeconds()]));
  if (consumed.changes !== 1) throw authFailed('unknown, used or expired challenge');

  const { key, expires: certExpires } = await principalKey(ctx, identity);
  const message = signedMessage(SIGNATURE_CONTEXT.authChallenge,
    { org: identity.org, role: identity.role, id: identity.id, challenge, audience: ctx.audience });
  if (!(await key.verify(message, signature))) throw authFailed('challenge signature does not verify');

  const token = randomToken();
  const expires = Math.min(nowSeconds() + ctx.limits.tokenLifetimeSeconds, certExpires);
  await ctx.db.write(async (tx) => {
    await tx.run('DELETE FROM tokens WHERE expires < ?', [nowSeconds()]);
    await tx.run('INSERT INTO tokens (token_hash, org, role, principal, expires) VALUES (?, ?, ?, ?, ?)',
      [hashToken(token), identity.org, identity.role, identity.id, expires]);
  });
  ctx.logger.info({ event: 'authenticated', org: identity.org, role: identity.role, id: identity.id }, 'token issued');
  return { token, expires };
}

/** Resolves a bearer token to its principal, or throws 401 unauthorized. */
export async function principalForToken(ctx: BrokerContext, token: string): Promise<Principal> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) throw new BrokerError(401, 'unauthorized', 'malformed bearer token');
  const tokenHash = hashToken(token);
  const row = await ctx.db.get<{ token_hash: string; org: string; role: Role; principal: string; expires: number }>(
    'SELECT token_hash, org, role, principal, expires FROM tokens WHERE token_hash = ?', [tokenHash]);
  // The lookup is by hash, so timing reveals nothing about the token; the
  // constant-time compare guards against a collation that matched loosely.
  if (row === undefined || !constantTimeEqual(fromBase64Url(row.token_hash), fromBase64Url(tokenHash))) {
    throw new BrokerError(401, 'unauthorized', 'unknown or revoked bearer token');
  }
  if (row.expires <= nowSeconds()) throw new BrokerError(401, 'unauthorized', 'bearer token expired');
  return { org: row.org, role: row.role, id: row.principal };
}

export async function authenticateHttp(ctx: BrokerContext, request: IncomingMessage): Promise<Principal> {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ') !== true) throw new BrokerError(401, 'unauthorized', 'missing authorization: Bearer <token>');
  return principalForToken(ctx, header.slice('Bearer '.length).trim());
}
