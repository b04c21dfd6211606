import { SigningPublicKey } from '../protocol/keys.js';
import type { OrgTrust } from '../protocol/index.js';
import type { Signed } from '../protocol/signed.js';
import type { ConsumerCertBody, DeviceCertBody, PolicyBody, SecretBody } from '../protocol/types.js';
import { nowSeconds, type BrokerContext, type Principal } from './context.js';
import { BrokerError } from './errors.js';
import type { Queryable } from './db.js';

/** Reads shared by several handlers. Every query names the org. */

const orgKeyCache = new Map<string, SigningPublicKey>();

/** Returns the org's identity key, or throws 404 unknown_org. Org objects never change, so the key is cached. */
export async function orgIdentityKey(db: Queryable, org: string): Promise<SigningPublicKey> {
  const cached = orgKeyCache.get(org);
  if (cached !== undefined) return cached;
  const row = await db.get<{ identity_key: string }>('SELECT identity_key FROM orgs WHERE org = ?', [org]);
  if (row === undefined) throw new BrokerError(404, 'unknown_org', `org ${org} is not registered`);
  const key = SigningPublicKey.fromBase64Url(row.identity_key);
  orgKeyCache.set(org, key);
  return key;
}

interface CertificateRow { object: string; auth_key: string; expires: number; revoked: number }

/** Returns a stored certificate that is neither revoked nor expired, or undefined. */
export async function validCertificate<B extends DeviceCertBody | ConsumerCertBody>(
  db: Queryable, org: string, kind: 'device' | 'consumer', id: string,
): Promise<{ cert: Signed<B>; authKey: SigningPublicKey } | undefined> {
  const row = await db.get<CertificateRow>(
    'SELECT object, auth_key, expires, revoked FROM certificates WHERE org = ? AND kind = ? AND id = ?', [org, kind, id]);
  if (row === undefined || row.revoked !== 0 || row.expires <= nowSeconds()) return undefined;
  return { cert: JSON.parse(row.object) as Signed<B>, authKey: SigningPublicKey.fromBase64Url(row.auth_key) };
}

/** Returns the trust anchor the protocol verifiers start from: the org id and its identity key. */
export async function orgTrust(db: Queryable, org: string): Promise<OrgTrust> {
  return { org, identityKey: await orgIdentityKey(db, org) };
}

/** Like validCertificate for the authenticated principal itself; a vanished certificate means the token is stale. */
export async function principalCertificate<B extends DeviceCertBody | ConsumerCertBody>(
  ctx: BrokerContext, principal: Principal,
): Promise<{ cert: Signed<B>; authKey: SigningPublicKey }> {
  if (principal.role === 'admin') throw new BrokerError(403, 'forbidden', 'admin has no certificate');
  const found = await validCertificate<B>(ctx.db, principal.org, principal.role, principal.id);
  if (found === undefined) throw new BrokerError(401, 'unauthorized', `${principal.role} certificate is revoked or expired`);
  return found;
}

/** Returns the latest version of every policy name. */
export async function latestPolicies(db: Queryable, org: string): Promise<Signed<PolicyBody>[]> {
  const rows = await db.all<{ object: string }>(
    `SELECT p.object FROM policies p
     WHERE p.org = ? AND p.version = (SELECT MAX(q.version) FROM policies q WHERE q.org = p.org AND q.name = p.name)
     ORDER BY p.name`, [org]);
  return rows.map((row) => JSON.parse(row.object) as Signed<PolicyBody>);
}

/** Returns the latest version of each path that exists, in the order asked. */
export async function latestSecrets(db: Queryable, org: string, paths: string[]): Promise<Signed<SecretBody>[]> {
  const secrets: Signed<SecretBody>[] = [];
  for (const path of paths) {
    const row = await db.get<{ object: string }>(
      'SELECT object FROM secrets WHERE org = ? AND path = ? ORDER BY version DESC LIMIT 1', [org, path]);
    if (row !== undefined) secrets.push(JSON.parse(row.object) as Signed<SecretBody>);
  }
  return secrets;
}
