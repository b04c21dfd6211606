import { HASH_CONTEXT } from '../protocol/contexts.js';
import { hashObject } from '../protocol/hash.js';
import type { Signed } from '../protocol/signed.js';
import type { AuditHeadRef } from '../protocol/types.js';
import type { Queryable } from './db.js';
import { BrokerError } from './errors.js';

export type AuditEventType =
  | 'org-registered' | 'invite-created' | 'enrollment-submitted' | 'enrollment-rejected'
  | 'certificate-stored' | 'revocation-stored' | 'lease-revoked' | 'policy-stored' | 'secret-stored'
  | 'request-created' | 'request-delivered' | 'approval-accepted' | 'approval-rejected'
  | 'request-expired' | 'request-undelivered' | 'request-cancelled' | 'request-refused' | 'result-acknowledged';

/** One link of an org's audit chain. `hash` = hashObject(HASH_CONTEXT.auditEntry, entry). */
export interface AuditEntry {
  seq: number;
  prev: string | null;
  time: number;
  type: AuditEventType;
  actor: string;
  subjects: string[];
  object: Signed | null;
}

export interface AuditEvent {
  type: AuditEventType;
  actor: string;
  subjects: string[];
  object?: Signed | null;
}

export function hashAuditEntry(entry: AuditEntry): string {
  return hashObject(HASH_CONTEXT.auditEntry, entry);
}

/**
 * Appends an event to the org's chain inside the caller's write transaction.
 * The org row is locked first (FOR UPDATE on PostgreSQL, the database lock on
 * SQLite), so concurrent appends get consecutive sequence numbers. Callers
 * update their own rows before appending, so every transaction takes locks in
 * the same order.
 */
export async function appendAudit(tx: Queryable, org: string, event: AuditEvent, time: number): Promise<AuditHeadRef> {
  const head = await tx.get<{ audit_seq: number; audit_hash: string | null }>(
    'SELECT audit_seq, audit_hash FROM orgs WHERE org = ? FOR UPDATE', [org]);
  if (head === undefined) throw new BrokerError(404, 'unknown_org', `org ${org} is not registered`);
  const entry: AuditEntry = {
    seq: head.audit_seq + 1,
    prev: head.audit_hash,
    time,
    type: event.type,
    actor: event.actor,
    subjects: event.subjects,
    object: event.object ?? null,
  };
  const hash = hashAuditEntry(entry);
  await tx.run('INSERT INTO audit (org, seq, entry, hash) VALUES (?, ?, ?, ?)', [org, entry.seq, JSON.stringify(entry), hash]);
  await tx.run('UPDATE orgs SET audit_seq = ?, audit_hash = ? WHERE org = ?', [entry.seq, hash, org]);
  return { seq: entry.seq, hash };
}
