import { canonicalBytes } from '../protocol/canonical.js';
import { constantTimeEqual, fromBase64Url, fromBase64UrlExact, toBase64Url, utf8Encode } from '../protocol/encoding.js';
import { sha256 } from '../protocol/hash.js';
import { SigningPublicKey } from '../protocol/keys.js';
import { signObject, type Signed } from '../protocol/signed.js';
import type { AuditHeadBody, ConsumerCertBody, DeviceCertBody, PolicyBody } from '../protocol/types.js';
import { appendAudit, type AuditEntry } from './audit.js';
import { revokeLease } from './leases.js';
import { nowSeconds, type BrokerContext, type Principal } from './context.js';
import { BrokerError, conflict } from './errors.js';
import { requireId, requireInteger, requireOneOf, requireRecord, requireString } from './shape.js';
import { orgIdentityKey, orgTrust } from './store.js';
import {
  certificateAuthKey, certificateId, verifyCertificate, verifyOrgObject, verifyPolicyObject, verifyRevocationObject, verifySecretObject, pinnedPolicy,
  type CertificateBody,
} from './verify.js';

/** Handlers for the org's own signed objects: registration, certificates, revocations, policies, secrets, audit reads. */

function actorOf(principal: Principal): string {
  return `${principal.role}:${principal.id}`;
}

export async function registerOrg(ctx: BrokerContext, input: unknown): Promise<{ status: number; body: unknown }> {
  const org = await verifyOrgObject(requireRecord(input, 'body').org);
  const fingerprint = org.body.org;
  const created = await ctx.db.write(async (tx) => {
    const existing = await tx.get<{ object: string }>('SELECT object FROM orgs WHERE org = ?', [fingerprint]);
    if (existing !== undefined) {
      if (constantTimeEqual(canonicalBytes(JSON.parse(existing.object)), canonicalBytes(org))) return false;
      throw conflict('org_exists', `org ${fingerprint} is already registered with another object`);
    }
    await tx.run('INSERT INTO orgs (org, object, identity_key, created, audit_seq, audit_hash) VALUES (?, ?, ?, ?, 0, NULL)',
      [fingerprint, JSON.stringify(org), org.body.identityKey, nowSeconds()]);
    await appendAudit(tx, fingerprint, { type: 'org-registered', actor: `admin:${fingerprint}`, subjects: [fingerprint], object: org }, nowSeconds());
    return true;
  });
  if (created) ctx.logger.info({ event: 'org-registered', org: fingerprint }, 'org registered');
  return { status: created ? 201 : 200, body: { org: fingerprint } };
}

export async function getOrg(ctx: BrokerContext, org: string): Promise<unknown> {
  const row = await ctx.db.get<{ object: string }>('SELECT object FROM orgs WHERE org = ?', [org]);
  if (row === undefined) throw new BrokerError(404, 'unknown_org', `org ${org} is not registered`);
  return { org: JSON.parse(row.object) as unknown, brokerKey: ctx.brokerKey.publicKey.toBase64Url() };
}

export async function createInvite(ctx: BrokerContext, principal: Principal, input: unknown): Promise<unknown> {
  const record = requireRecord(input, 'body');
  const id = requireId(record, 'id');
  const codeHash = requireString(record, 'codeHash', 64);
  fromBase64UrlExact(codeHash, 32, 'codeHash');
  const kind = requireOneOf(record, 'kind', ['device', 'consumer'] as const);
  const name = requireString(record, 'name', 200);
  const expires = requireInteger(record, 'expires');
  if (expires <= nowSeconds()) throw new BrokerError(400, 'invalid_request', 'expires must be in the future');
  await ctx.db.write(async (tx) => {
    const existing = await tx.get('SELECT id FROM invites WHERE org = ? AND id = ?', [principal.org, id]);
    if (existing !== undefined) throw conflict('duplicate_invite', `invite ${id} already exists`);
    await tx.run('INSERT INTO invites (org, id, code_hash, kind, name, expires, used, failures) VALUES (?, ?, ?, ?, ?, ?, 0, 0)',
      [principal.org, id, codeHash, kind, name, expires]);
    await appendAudit(tx, principal.org, { type: 'invite-created', actor: actorOf(principal), subjects: [id] }, nowSeconds());
  });
  ctx.logger.info({ event: 'invite-created', org: principal.org, invite: id, kind }, 'invite created');
  return { invite: id };
}

/** Stores a certificate and audits it, inside the caller's transaction. Revoked ids cannot be certified again. */
async function storeCertificate(
  ctx: BrokerContext, tx: Parameters<Parameters<BrokerContext['db']['write']>[0]>[0], principal: Principal, cert: Signed<CertificateBody>,
): Promise<void> {
  const { kind, id } = certificateId(cert);
  const revoked = await tx.get('SELECT id FROM revocations WHERE org = ? AND kind = ? AND id = ?', [principal.org, kind, id]);
  if (revoked !== undefined) throw conflict('revoked', `${kind} ${id} was revoked and cannot be certified again`);
  await tx.run(
    `INSERT INTO certificates (org, kind, id, object, auth_key, expires, revoked) VALUES (?, ?, ?, ?, ?, ?, 0)
     ON CONFLICT (org, kind, id) DO UPDATE SET object = excluded.object, auth_key = excluded.auth_key, expires = excluded.expires`,
    [principal.org, kind, id, JSON.stringify(cert), certificateAuthKey(cert), cert.body.expires]);
  await appendAudit(tx, principal.org, { type: 'certificate-stored', actor: actorOf(principal), subjects: [`${kind}:${id}`], object: cert }, nowSeconds());
}

export async function putCertificate(ctx: BrokerContext, principal: Principal, input: unknown): Promise<unknown> {
  const trust = await orgTrust(ctx.db, principal.org);
  const cert = await verifyCertificate(requireRecord(input, 'body').certificate, trust, nowSeconds());
  await ctx.db.write((tx) => storeCertificate(ctx, tx, principal, cert));
  ctx.logger.info({ event: 'certificate-stored', org: principal.org, ...certificateId(cert) }, 'certificate stored');
  return certificateId(cert);
}

export async function listCertificates(ctx: BrokerContext, org: string): Promise<unknown> {
  const rows = await ctx.db.all<{ kind: string; object: string }>('SELECT kind, object FROM certificates WHERE org = ? ORDER BY kind, id', [org]);
  const devices: unknown[] = [];
  const consumers: unknown[] = [];
  for (const row of rows) (row.kind === 'device' ? devices : consumers).push(JSON.parse(row.object));
  return { devices, consumers };
}

// Enrollment ---------------------------------------------------------------

const MAX_CODE_FAILURES = 5;

function hashCode(code: string): Uint8Array {
  return sha256(utf8Encode(code));
}

interface EnrollmentRow {
  id: string; invite_id: string; code_hash: string; kind: string; name: string; platform: string;
  keys: string; state: string; created: number; certificate: string | null;
}

function enrollmentView(row: EnrollmentRow): unknown {
  return {
    id: row.id, inviteId: row.invite_id, kind: row.kind, name: row.name, platform: row.platform,
    keys: JSON.parse(row.keys) as unknown, state: row.state, created: row.created,
    certificate: row.certificate === null ? null : JSON.parse(row.certificate) as unknown,
  };
}

function parseEnrollmentKeys(record: Record<string, unknown>, kind: string): Record<string, string> {
  const keys = requireRecord(record.keys, 'keys');
  const names = kind === 'device' ? ['signingKey', 'sealingKey'] : ['hostKey'];
  if (Object.keys(keys).sort().join(',') !== [...names].sort().join(',')) {
    throw new BrokerError(400, 'invalid_request', `keys must have exactly ${names.join(', ')} for a ${kind} invite`);
  }
  const parsed: Record<string, string> = {};
  for (const name of names) {
    const value = requireString(keys, name, 64);
    fromBase64UrlExact(value, 32, `keys.${name}`);
    parsed[name] = value;
  }
  return parsed;
}

/** POST enrollments: a device or host claims an invite with its one-time code. */
export async function submitEnrollment(ctx: BrokerContext, org: string, input: unknown): Promise<unknown> {
  const record = requireRecord(input, 'body');
  const inviteId = requireId(record, 'inviteId');
  const code = requireString(record, 'code', 256);
  const name = requireString(record, 'name', 200);
  const platform = requireString(record, 'platform', 32);
  await orgIdentityKey(ctx.db, org);
  const codeHash = hashCode(code);
  const enrollmentId = toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(16)));

  const outcome = await ctx.db.write(async (tx) => {
    const invite = await tx.get<{ code_hash: string; kind: string; expires: number; used: number; failures: number }>(
      'SELECT code_hash, kind, expires, used, failures FROM invites WHERE org = ? AND id = ?', [org, inviteId]);
    if (invite === undefined || invite.used !== 0 || invite.expires <= nowSeconds() || invite.failures >= MAX_CODE_FAILURES) return 'invalid';
    if (!constantTimeEqual(codeHash, fromBase64Url(invite.code_hash))) {
      await tx.run('UPDATE invites SET failures = failures + 1 WHERE org = ? AND id = ?', [org, inviteId]);
      return 'invalid';
    }
    const keys = parseEnrollmentKeys(record, invite.kind);
    if (invite.kind === 'device' && platform !== 'terminal' && platform !== 'web') {
      throw new BrokerError(400, 'invalid_request', 'platform must be terminal or web for a device');
    }
    const claimed = await tx.run('UPDATE invites SET used = 1 WHERE org = ? AND id = ? AND used = 0', [org, inviteId]);
    if (claimed.changes !== 1) return 'invalid';
    await tx.run(
      `INSERT INTO enrollments (org, id, invite_id, code_hash, kind, name, platform, keys, state, created, certificate)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, NULL)`,
      [org, enrollmentId, inviteId, invite.code_hash, invite.kind, name, platform, JSON.stringify(keys), nowSeconds()]);
    await appendAudit(tx, org, { type: 'enrollment-submitted', actor: `enrollment:${enrollmentId}`, subjects: [inviteId, enrollmentId] }, nowSeconds());
    return 'ok';
  });
  if (outcome === 'invalid') throw new BrokerError(403, 'invite_invalid', 'invite is unknown, used or expired, or the code is wrong');
  ctx.logger.info({ event: 'enrollment-submitted', org, invite: inviteId, enrollment: enrollmentId }, 'enrollment submitted');
  return { enrollment: enrollmentId, state: 'pending' };
}

export async function pollEnrollment(ctx: BrokerContext, org: string, id: string, input: unknown): Promise<unknown> {
  const code = requireString(requireRecord(input, 'body'), 'code', 256);
  const row = await ctx.db.get<EnrollmentRow>('SELECT * FROM enrollments WHERE org = ? AND id = ?', [org, id]);
  if (row === undefined || !constantTimeEqual(hashCode(code), fromBase64Url(row.code_hash))) {
    throw new BrokerError(403, 'invite_invalid', 'unknown enrollment or wrong code');
  }
  return { enrollment: enrollmentView(row) };
}

export async function listEnrollments(ctx: BrokerContext, org: string, state: string | null): Promise<unknown> {
  const rows = state === null
    ? await ctx.db.all<EnrollmentRow>('SELECT * FROM enrollments WHERE org = ? ORDER BY created, id', [org])
    : await ctx.db.all<EnrollmentRow>('SELECT * FROM enrollments WHERE org = ? AND state = ? ORDER BY created, id', [org, state]);
  return { enrollments: rows.map(enrollmentView) };
}

function checkCertificateMatches(cert: Signed<CertificateBody>, row: EnrollmentRow): void {
  const keys = JSON.parse(row.keys) as Record<string, string>;
  if (row.kind === 'device' && cert.body.kind === 'device-cert') {
    const body: DeviceCertBody = cert.body;
    if (body.signingKey === keys.signingKey && body.sealingKey === keys.sealingKey) return;
  } else if (row.kind === 'consumer' && cert.body.kind === 'consumer-cert') {
    const body: ConsumerCertBody = cert.body;
    if (body.hostKey === keys.hostKey) return;
  } else {
    throw new BrokerError(400, 'key_mismatch', `a ${row.kind} enrollment needs a ${row.kind}-cert, got ${cert.body.kind}`);
  }
  throw new BrokerError(400, 'key_mismatch', 'certificate keys differ from the keys the enrollment submitted');
}

export async function completeEnrollment(ctx: BrokerContext, principal: Principal, id: string, input: unknown): Promise<unknown> {
  const trust = await orgTrust(ctx.db, principal.org);
  const cert = await verifyCertificate(requireRecord(input, 'body').certificate, trust, nowSeconds());
  await ctx.db.write(async (tx) => {
    const row = await tx.get<EnrollmentRow>('SELECT * FROM enrollments WHERE org = ? AND id = ?', [principal.org, id]);
    if (row === undefined) throw new BrokerError(404, 'not_found', `enrollment ${id} not found`);
    if (row.state !== 'pending') throw conflict('enrollment_not_pending', `enrollment ${id} is ${row.state}`);
    checkCertificateMatches(cert, row);
    await tx.run("UPDATE enrollments SET state = 'done', certificate = ? WHERE org = ? AND id = ?", [JSON.stringify(cert), principal.org, id]);
    await storeCertificate(ctx, tx, principal, cert);
  });
  ctx.logger.info({ event: 'enrollment-done', org: principal.org, enrollment: id, ...certificateId(cert) }, 'enrollment completed');
  return { enrollment: id, state: 'done' };
}

export async function rejectEnrollment(ctx: BrokerContext, principal: Principal, id: string): Promise<unknown> {
  await ctx.db.write(async (tx) => {
    const changed = await tx.run("UPDATE enrollments SET state = 'rejected' WHERE org = ? AND id = ? AND state = 'pending'", [principal.org, id]);
    if (changed.changes !== 1) throw conflict('enrollment_not_pending', `enrollment ${id} is not pending`);
    await appendAudit(tx, principal.org, { type: 'enrollment-rejected', actor: actorOf(principal), subjects: [id] }, nowSeconds());
  });
  ctx.logger.info({ event: 'enrollment-rejected', org: principal.org, enrollment: id }, 'enrollment rejected');
  return { enrollment: id, state: 'rejected' };
}

// Revocations, policies, secrets --------------------------------------------

export async function putRevocation(ctx: BrokerContext, principal: Principal, input: unknown): Promise<unknown> {
  const trust = await orgTrust(ctx.db, principal.org);
  const revocation = await verifyRevocationObject(requireRecord(input, 'body').revocation, trust);
  const { subject, id } = revocation.body;
  if (subject === 'lease') return revokeLease(ctx, principal, revocation);
  await ctx.db.write(async (tx) => {
    await tx.run('INSERT INTO revocations (org, kind, id, object) VALUES (?, ?, ?, ?) ON CONFLICT (org, kind, id) DO NOTHING',
      [principal.org, subject, id, JSON.stringify(revocation)]);
    await tx.run('UPDATE certificates SET revoked = 1 WHERE org = ? AND kind = ? AND id = ?', [principal.org, subject, id]);
    await tx.run('DELETE FROM tokens WHERE org = ? AND role = ? AND principal = ?', [principal.org, subject, id]);
    await appendAudit(tx, principal.org, { type: 'revocation-stored', actor: actorOf(principal), subjects: [`${subject}:${id}`], object: revocation }, nowSeconds());
  });
  ctx.hub.closePrincipal(principal.org, subject, id, 4403, 'certificate revoked');
  ctx.logger.info({ event: 'revocation-stored', org: principal.org, subject, id }, 'certificate revoked');
  return { revoked: `${subject}:${id}` };
}

export async function listRevocations(ctx: BrokerContext, org: string): Promise<unknown> {
  const rows = await ctx.db.all<{ object: string }>('SELECT object FROM revocations WHERE org = ? ORDER BY kind, id', [org]);
  return { revocations: rows.map((row) => JSON.parse(row.object) as unknown) };
}

export async function putPolicy(ctx: BrokerContext, principal: Principal, input: unknown): Promise<unknown> {
  const trust = await orgTrust(ctx.db, principal.org);
  const policy = await verifyPolicyObject(requireRecord(input, 'body').policy, trust);
  const { name, version } = policy.body;
  await ctx.db.write(async (tx) => {
    const latest = await tx.get<{ version: number | null }>('SELECT MAX(version) AS version FROM policies WHERE org = ? AND name = ?', [principal.org, name]);
    if (latest?.version != null && version <= latest.version) {
      throw conflict('policy_rollback', `policy ${name} version ${version} is not greater than stored version ${latest.version}`);
    }
    await tx.run('INSERT INTO policies (org, name, version, object) VALUES (?, ?, ?, ?)', [principal.org, name, version, JSON.stringify(policy)]);
    await appendAudit(tx, principal.org, { type: 'policy-stored', actor: actorOf(principal), subjects: [`policy:${name}:${version}`], object: policy }, nowSeconds());
  });
  ctx.logger.info({ event: 'policy-stored', org: principal.org, policy: name, version }, 'policy stored');
  return { policy: name, version };
}

export async function putSecret(ctx: BrokerContext, principal: Principal, input: unknown): Promise<unknown> {
  const trust = await orgTrust(ctx.db, principal.org);
  const value = requireRecord(input, 'body').secret;
  const pinned = pinnedPolicy(value);
  const policyRow = await ctx.db.get<{ object: string }>('SELECT object FROM policies WHERE org = ? AND name = ? AND version = ?',
    [principal.org, pinned.name, pinned.version]);
  if (policyRow === undefined) {
    throw new BrokerError(400, 'policy_mismatch', `secret pins policy ${pinned.name} version ${pinned.version}, which is not stored`);
  }
  const secret = await verifySecretObject(value, trust, JSON.parse(policyRow.object) as Signed<PolicyBody>);
  const { path, version } = secret.body;
  await ctx.db.write(async (tx) => {
    const latest = await tx.get<{ version: number | null }>('SELECT MAX(version) AS version FROM secrets WHERE org = ? AND path = ?', [principal.org, path]);
    if (latest?.version != null && version <= latest.version) {
      throw conflict('secret_rollback', `secret ${path} version ${version} is not greater than stored version ${latest.version}`);
    }
    await tx.run('INSERT INTO secrets (org, path, version, object) VALUES (?, ?, ?, ?)', [principal.org, path, version, JSON.stringify(secret)]);
    await appendAudit(tx, principal.org, { type: 'secret-stored', actor: actorOf(principal), subjects: [`secret:${path}:${version}`], object: secret }, nowSeconds());
  });
  ctx.logger.info({ event: 'secret-stored', org: principal.org, path, version }, 'secret version stored');
  return { path, version };
}

// Audit reads ----------------------------------------------------------------

const MAX_AUDIT_PAGE = 1000;

export async function signedAuditHead(ctx: BrokerContext, org: string): Promise<Signed<AuditHeadBody>> {
  const row = await ctx.db.get<{ audit_seq: number; audit_hash: string | null }>('SELECT audit_seq, audit_hash FROM orgs WHERE org = ?', [org]);
  if (row === undefined) throw new BrokerError(404, 'unknown_org', `org ${org} is not registered`);
  const body: AuditHeadBody = { v: 1, kind: 'audit-head', org, seq: row.audit_seq, hash: row.audit_hash ?? '', time: nowSeconds() };
  return signObject(body, ctx.brokerKey);
}

export async function auditEntries(ctx: BrokerContext, org: string, after: number, limit: number): Promise<unknown> {
  const head = await signedAuditHead(ctx, org);
  const rows = await ctx.db.all<{ entry: string; hash: string }>(
    'SELECT entry, hash FROM audit WHERE org = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?',
    [org, after, head.body.seq, Math.min(Math.max(limit, 1), MAX_AUDIT_PAGE)]);
  return { entries: rows.map((row) => ({ entry: JSON.parse(row.entry) as AuditEntry, hash: row.hash })), head };
}

export function brokerPublicKey(ctx: BrokerContext): SigningPublicKey {
  return ctx.brokerKey.publicKey;
}
