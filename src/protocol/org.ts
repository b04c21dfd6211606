import { PROTOCOL_VERSION } from './contexts.js';
import { ProtocolError } from './errors.js';
import { SigningPublicKey, type SigningPrivateKey } from './keys.js';
import { expectInteger, expectMembers, expectPublicKey, expectString, expectFingerprint } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { checkTrust, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { OrgBody } from './types.js';

export const MAX_NAME_LENGTH = 128;

/** Checks the exact shape of an org body. */
export function parseOrgBody(value: unknown): OrgBody {
  const body = expectMembers(value, 'org', ['v', 'kind', 'org', 'name', 'identityKey', 'created']);
  return {
    v: PROTOCOL_VERSION,
    kind: 'org',
    org: expectFingerprint(body.org, 'org.org'),
    name: expectString(body.name, 'org.name', MAX_NAME_LENGTH),
    identityKey: expectPublicKey(body.identityKey, 'org.identityKey'),
    created: expectInteger(body.created, 'org.created'),
  };
}

/** Creates the org registration, self-signed by the Org Identity key. */
export async function createOrg(identityKey: SigningPrivateKey, fields: { name: string; created: number }): Promise<Signed<OrgBody>> {
  const body = parseOrgBody({
    v: PROTOCOL_VERSION,
    kind: 'org',
    org: identityKey.publicKey.fingerprint(),
    name: fields.name,
    identityKey: identityKey.publicKey.toBase64Url(),
    created: fields.created,
  });
  return signObject(body, identityKey);
}

/**
 * Verifies an org registration against the fingerprint pinned at enrollment:
 * the org id must be that fingerprint, the embedded identity key must hash to
 * it, and that key must have signed the body. Returns the trust anchor for
 * every other verifier.
 */
export async function verifyOrg(value: unknown, expectedFingerprint: string): Promise<{ org: Verified<OrgBody>; trust: OrgTrust }> {
  const identityKey = SigningPublicKey.fromBase64Url(identityKeyOf(value), 'org.identityKey');
  if (identityKey.fingerprint() !== expectedFingerprint) {
    throw new ProtocolError('untrusted_signer', `org identity key has fingerprint ${identityKey.fingerprint()}, pinned ${expectedFingerprint}`);
  }
  const trust: OrgTrust = { org: expectedFingerprint, identityKey };
  checkTrust(trust);
  const signed = await verifyEnvelope(value, 'org', expectedFingerprint, identityKey, parseOrgBody);
  return { org: markVerified(signed), trust };
}

function identityKeyOf(value: unknown): string {
  if (typeof value === 'object' && value !== null && 'body' in value) {
    const body: unknown = value.body;
    if (typeof body === 'object' && body !== null && 'identityKey' in body && typeof body.identityKey === 'string') {
      return body.identityKey;
    }
  }
  throw new ProtocolError('invalid_object', 'org.identityKey is missing');
}
