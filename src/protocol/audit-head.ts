import { PROTOCOL_VERSION } from './contexts.js';
import type { SigningPrivateKey, SigningPublicKey } from './keys.js';
import { expectBase64Url, expectFingerprint, expectInteger, expectMembers } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { markVerified, verifyEnvelope, type Verified } from './trust.js';
import type { AuditHeadBody } from './types.js';

/** Checks the exact shape of an audit head body. */
export function parseAuditHeadBody(value: unknown): AuditHeadBody {
  const body = expectMembers(value, 'audit-head', ['v', 'kind', 'org', 'seq', 'hash', 'time']);
  return {
    v: PROTOCOL_VERSION,
    kind: 'audit-head',
    org: expectFingerprint(body.org, 'audit-head.org'),
    seq: expectInteger(body.seq, 'audit-head.seq'),
    hash: expectBase64Url(body.hash, 'audit-head.hash', 32),
    time: expectInteger(body.time, 'audit-head.time'),
  };
}

/** Signs the broker's audit chain head for one org with the broker key. */
export async function signAuditHead(brokerKey: SigningPrivateKey, fields: Omit<AuditHeadBody, 'v' | 'kind'>): Promise<Signed<AuditHeadBody>> {
  return signObject(parseAuditHeadBody({ ...fields, v: PROTOCOL_VERSION, kind: 'audit-head' }), brokerKey);
}

/**
 * Verifies an audit head: header (for `org`), shape and the broker key
 * signature. The broker key is pinned by the caller; nothing here says the
 * head is the newest one.
 */
export async function verifyAuditHead(value: unknown, org: string, brokerKey: SigningPublicKey): Promise<Verified<AuditHeadBody>> {
  return markVerified(await verifyEnvelope(value, 'audit-head', org, brokerKey, parseAuditHeadBody));
}
