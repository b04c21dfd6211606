import { PROTOCOL_VERSION } from './contexts.js';
import { ProtocolError } from './errors.js';
import type { SigningPrivateKey } from './keys.js';
import { expectFingerprint, expectId, expectInteger, expectMembers, expectOneOf, expectString } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { checkTrust, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { RevocationBody } from './types.js';

export const MAX_REVOCATION_REASON_LENGTH = 1024;

/** Checks the exact shape of a revocation body. */
export function parseRevocationBody(value: unknown): RevocationBody {
  const body = expectMembers(value, 'revocation', ['v', 'kind', 'org', 'subject', 'id', 'reason', 'revoked']);
  return {
    v: PROTOCOL_VERSION,
    kind: 'revocation',
    org: expectFingerprint(body.org, 'revocation.org'),
    subject: expectOneOf(body.subject, 'revocation.subject', ['device', 'consumer', 'lease'] as const),
    id: expectId(body.id, 'revocation.id'),
    reason: expectString(body.reason, 'revocation.reason', MAX_REVOCATION_REASON_LENGTH, 0),
    revoked: expectInteger(body.revoked, 'revocation.revoked'),
  };
}

/**
 * Revokes a device or consumer certificate, or ends a lease early (subject
 * 'lease', id = the request id), signed by the Org Identity key.
 */
export async function createRevocation(
  identityKey: SigningPrivateKey,
  fields: Omit<RevocationBody, 'v' | 'kind' | 'org'>,
): Promise<Signed<RevocationBody>> {
  const body = parseRevocationBody({ ...fields, v: PROTOCOL_VERSION, kind: 'revocation', org: identityKey.publicKey.fingerprint() });
  return signObject(body, identityKey);
}

/**
 * Verifies a revocation: header, shape and Org Identity signature. A
 * revocation takes effect regardless of its `revoked` time, which is only
 * informational, so a future-dated one is honoured at once.
 */
export async function verifyRevocation(value: unknown, trust: OrgTrust): Promise<Verified<RevocationBody>> {
  checkTrust(trust);
  return markVerified(await verifyEnvelope(value, 'revocation', trust.org, trust.identityKey, parseRevocationBody));
}

/**
 * Throws 'wrong_org' when any revocation belongs to another org. Ids are
 * unique only within an org, so a foreign revocation must not be matched.
 */
export function checkRevocationsOrg(revocations: readonly Verified<RevocationBody>[], org: string): void {
  for (const revocation of revocations) {
    if (revocation.body.org !== org) {
      throw new ProtocolError('wrong_org', `revocation belongs to org ${revocation.body.org}, expected ${org}`);
    }
  }
}

/** Reports whether any of the verified revocations names this subject and id. */
export function isRevoked(revocations: readonly Verified<RevocationBody>[], subject: RevocationBody['subject'], id: string): boolean {
  return revocations.some((revocation) => revocation.body.subject === subject && revocation.body.id === id);
}
