import { HASH_CONTEXT } from '../protocol/contexts.js';
import { hashObject } from '../protocol/hash.js';
import type { SigningPublicKey } from '../protocol/keys.js';
import { isRecord, verifySigned, type Signed } from '../protocol/signed.js';
import type { AuditHeadBody, AuditHeadRef } from '../protocol/types.js';
import type { AuditEntry } from './audit.js';

/**
 * Checks an org's audit chain without a database, for `stillvault audit
 * verify` and for tests. Pure apart from signature checks (WebCrypto).
 */

export type AuditChainErrorCode =
  | 'audit_malformed'
  | 'audit_sequence'
  | 'audit_prev_mismatch'
  | 'audit_hash_mismatch'
  | 'audit_truncated'
  | 'audit_head_mismatch'
  | 'audit_fork'
  | 'bad_signature';

/** A broken chain. `seq` is the first sequence number found bad. */
export class AuditChainError extends Error {
  readonly code: AuditChainErrorCode;
  readonly seq: number;

  constructor(code: AuditChainErrorCode, seq: number, message: string, options?: { cause?: unknown }) {
    super(`audit entry ${seq}: ${message}`, options);
    this.name = 'AuditChainError';
    this.code = code;
    this.seq = seq;
  }
}

export interface AuditVerifyOptions {
  /** A head kept outside the log (by a client, or from an earlier run); the chain must contain it unchanged. */
  trustedHead?: AuditHeadRef;
  /** A broker-signed head; with `brokerKey`, its signature is checked and the chain must end exactly there. */
  signedHead?: Signed<AuditHeadBody>;
  brokerKey?: SigningPublicKey;
}

interface ListedEntry {
  entry: AuditEntry;
  hash: string;
}

function checkShape(item: unknown, position: number): ListedEntry {
  const seq = position + 1;
  if (!isRecord(item) || !isRecord(item.entry) || typeof item.hash !== 'string') {
    throw new AuditChainError('audit_malformed', seq, 'expected {entry, hash}');
  }
  const entry = item.entry;
  if (typeof entry.seq !== 'number' || !(entry.prev === null || typeof entry.prev === 'string') || typeof entry.time !== 'number'
    || typeof entry.type !== 'string' || typeof entry.actor !== 'string' || !Array.isArray(entry.subjects)) {
    throw new AuditChainError('audit_malformed', seq, 'entry lacks seq, prev, time, type, actor or subjects');
  }
  return item as unknown as ListedEntry;
}

function embeddedAuditHead(object: Signed | null): AuditHeadRef | null {
  if (object === null) return null;
  const head = (object.body as unknown as Record<string, unknown>).auditHead;
  if (!isRecord(head) || typeof head.seq !== 'number' || typeof head.hash !== 'string') return null;
  return { seq: head.seq, hash: head.hash };
}

/**
 * Verifies a whole chain from seq 1. Each entry must have a valid shape, seq
 * consecutive from 1, a prev link to the entry before and a matching hash.
 * Each embedded signed object's `auditHead` must name an earlier entry with
 * that hash, or its author saw a fork. Then the chain must contain the
 * trusted head and end at the signed head. Returns the verified head and
 * throws AuditChainError naming the first bad seq.
 */
export async function verifyAuditChain(entries: readonly unknown[], options: AuditVerifyOptions = {}): Promise<AuditHeadRef> {
  const hashes: string[] = [];
  let previous: string | null = null;
  for (let position = 0; position < entries.length; position++) {
    const { entry, hash } = checkShape(entries[position], position);
    const seq = position + 1;
    if (entry.seq !== seq) throw new AuditChainError('audit_sequence', seq, `found seq ${entry.seq}: entries are missing or out of order`);
    if (entry.prev !== previous) throw new AuditChainError('audit_prev_mismatch', seq, 'prev does not match the hash of the entry before it');
    const computed = hashObject(HASH_CONTEXT.auditEntry, entry);
    if (computed !== hash) throw new AuditChainError('audit_hash_mismatch', seq, 'entry content does not match its hash');

    const seen = embeddedAuditHead(entry.object);
    if (seen !== null && (seen.seq >= seq || hashes[seen.seq - 1] !== seen.hash)) {
      throw new AuditChainError('audit_fork', seq, `signed object refers to audit head ${seen.seq} that this chain does not contain`);
    }
    hashes.push(hash);
    previous = hash;
  }
  const head: AuditHeadRef = { seq: entries.length, hash: previous ?? '' };

  if (options.trustedHead !== undefined) {
    const trusted = options.trustedHead;
    if (trusted.seq > head.seq) {
      throw new AuditChainError('audit_truncated', head.seq + 1, `chain ends at ${head.seq}, but a trusted head at ${trusted.seq} was kept`);
    }
    if (trusted.seq > 0 && hashes[trusted.seq - 1] !== trusted.hash) {
      throw new AuditChainError('audit_head_mismatch', trusted.seq, 'entry differs from the trusted head kept for it');
    }
  }
  if (options.signedHead !== undefined) {
    if (options.brokerKey === undefined) throw new TypeError('signedHead needs brokerKey');
    const signed = options.signedHead;
    try {
      await verifySigned(signed, 'audit-head', signed.body.org, options.brokerKey);
    } catch (cause) {
      throw new AuditChainError('bad_signature', signed.body.seq, 'signed audit head does not verify with the broker key', { cause });
    }
    if (signed.body.seq > head.seq) {
      throw new AuditChainError('audit_truncated', head.seq + 1, `chain ends at ${head.seq}, but the broker signed a head at ${signed.body.seq}`);
    }
    if (signed.body.seq < head.seq || signed.body.hash !== head.hash) {
      throw new AuditChainError('audit_head_mismatch', signed.body.seq, 'signed head does not match the end of the chain');
    }
  }
  return head;
}
