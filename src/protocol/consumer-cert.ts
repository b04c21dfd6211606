import { PROTOCOL_VERSION } from './contexts.js';
import { ProtocolError } from './errors.js';
import type { SigningPrivateKey } from './keys.js';
import { MAX_NAME_LENGTH } from './org.js';
import { checkRevocationsOrg, isRevoked } from './revocation.js';
import { expectFingerprint, expectId, expectInteger, expectMembers, expectPublicKey, expectString } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { checkNotExpired, checkStarted, checkTrust, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { ConsumerCertBody, RevocationBody } from './types.js';

/** Checks the exact shape of a consumer certificate body. */
export function parseConsumerCertBody(value: unknown): ConsumerCertBody {
  const body = expectMembers(value, 'consumer-cert', ['v', 'kind', 'org', 'consumer', 'name', 'hostKey', 'issued', 'expires']);
  const cert: ConsumerCertBody = {
    v: PROTOCOL_VERSION,
    kind: 'consumer-cert',
    org: expectFingerprint(body.org, 'consumer-cert.org'),
    consumer: expectId(body.consumer, 'consumer-cert.consumer'),
    name: expectString(body.name, 'consumer-cert.name', MAX_NAME_LENGTH),
    hostKey: expectPublicKey(body.hostKey, 'consumer-cert.hostKey'),
    issued: expectInteger(body.issued, 'consumer-cert.issued'),
    expires: expectInteger(body.expires, 'consumer-cert.expires'),
  };
  if (cert.expires <= cert.issued) throw new ProtocolError('invalid_object', 'consumer-cert.expires must be after issued');
  return cert;
}

/** Issues a consumer host certificate, signed by the Org Identity key. */
export async function issueConsumerCert(
  identityKey: SigningPrivateKey,
  fields: Omit<ConsumerCertBody, 'v' | 'kind' | 'org'>,
): Promise<Signed<ConsumerCertBody>> {
  const body = parseConsumerCertBody({ ...fields, v: PROTOCOL_VERSION, kind: 'consumer-cert', org: identityKey.publicKey.fingerprint() });
  return signObject(body, identityKey);
}

/** Verifies a consumer certificate: as verifyDeviceCert, for subject 'consumer'. */
export async function verifyConsumerCert(
  value: unknown,
  trust: OrgTrust,
  now: number,
  revocations: readonly Verified<RevocationBody>[] = [],
): Promise<Verified<ConsumerCertBody>> {
  checkTrust(trust);
  checkRevocationsOrg(revocations, trust.org);
  const signed = await verifyEnvelope(value, 'consumer-cert', trust.org, trust.identityKey, parseConsumerCertBody);
  checkStarted('consumer certificate', signed.body.issued, now);
  checkNotExpired('consumer certificate', signed.body.expires, now);
  if (isRevoked(revocations, 'consumer', signed.body.consumer)) {
    throw new ProtocolError('revoked', `consumer ${signed.body.consumer} is revoked`);
  }
  return markVerified(signed);
}
