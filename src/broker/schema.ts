import type { BrokerDatabase } from './db.js';

/**
 * Tables of the broker, in SQL that SQLite and PostgreSQL both accept. Every
 * table carries `org` first in its primary key, and every query names it.
 * Signed objects are stored as their JSON text, exactly as received.
 */
const STATEMENTS = [
  `CREATE TABLE IF NOT EXISTS orgs (
    org TEXT PRIMARY KEY,
    object TEXT NOT NULL,
    identity_key TEXT NOT NULL,
    created BIGINT NOT NULL,
    audit_seq BIGINT NOT NULL,
    audit_hash TEXT
  )`,
  `CREATE TABLE IF NOT EXISTS challenges (
    challenge TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    role TEXT NOT NULL,
    principal TEXT NOT NULL,
    expires BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    role TEXT NOT NULL,
    principal TEXT NOT NULL,
    expires BIGINT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS invites (
    org TEXT NOT NULL,
    id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    expires BIGINT NOT NULL,
    used INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (org, id)
  )`,
  `CREATE TABLE IF NOT EXISTS enrollments (
    org TEXT NOT NULL,
    id TEXT NOT NULL,
    invite_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    keys TEXT NOT NULL,
    state TEXT NOT NULL,
    created BIGINT NOT NULL,
    certificate TEXT,
    PRIMARY KEY (org, id)
  )`,
  `CREATE TABLE IF NOT EXISTS certificates (
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    object TEXT NOT NULL,
    auth_key TEXT NOT NULL,
    expires BIGINT NOT NULL,
    revoked INTEGER NOT NULL,
    PRIMARY KEY (org, kind, id)
  )`,
  `CREATE TABLE IF NOT EXISTS revocations (
    org TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    object TEXT NOT NULL,
    PRIMARY KEY (org, kind, id)
  )`,
  `CREATE TABLE IF NOT EXISTS policies (
    org TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    object TEXT NOT NULL,
    PRIMARY KEY (org, name, version)
  )`,
  `CREATE TABLE IF NOT EXISTS secrets (
    org TEXT NOT NULL,
    path TEXT NOT NULL,
    version BIGINT NOT NULL,
    object TEXT NOT NULL,
    PRIMARY KEY (org, path, version)
  )`,
  `CREATE TABLE IF NOT EXISTS requests (
    org TEXT NOT NULL,
    id TEXT NOT NULL,
    consumer TEXT NOT NULL,
    object TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    created BIGINT NOT NULL,
    received BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    deliver_by BIGINT NOT NULL,
    eligible INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    settled_by TEXT,
    approval TEXT,
    secrets TEXT,
    result_acked INTEGER NOT NULL,
    PRIMARY KEY (org, id)
  )`,
  `CREATE INDEX IF NOT EXISTS requests_pending ON requests (state, expires)`,
  `CREATE INDEX IF NOT EXISTS requests_consumer ON requests (org, consumer, state)`,
  `CREATE TABLE IF NOT EXISTS deliveries (
    org TEXT NOT NULL,
    request_id TEXT NOT NULL,
    device TEXT NOT NULL,
    policy TEXT NOT NULL,
    acked INTEGER NOT NULL,
    PRIMARY KEY (org, request_id, device)
  )`,
  `CREATE INDEX IF NOT EXISTS deliveries_device ON deliveries (org, device, acked)`,
  // One row per device that refused a request after it failed verification there.
  `CREATE TABLE IF NOT EXISTS refusals (
    org TEXT NOT NULL,
    request_id TEXT NOT NULL,
    device TEXT NOT NULL,
    code TEXT NOT NULL,
    time BIGINT NOT NULL,
    PRIMARY KEY (org, request_id, device)
  )`,
  `CREATE TABLE IF NOT EXISTS push_subscriptions (
    org TEXT NOT NULL,
    device TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (org, device)
  )`,
  `CREATE TABLE IF NOT EXISTS audit (
    org TEXT NOT NULL,
    seq BIGINT NOT NULL,
    entry TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (org, seq)
  )`,
];

export async function migrate(db: BrokerDatabase): Promise<void> {
  await db.write(async (tx) => {
    for (const statement of STATEMENTS) await tx.run(statement);
  });
}
