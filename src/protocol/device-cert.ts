import { PROTOCOL_VERSION } from './contexts.js';
import { ProtocolError } from './errors.js';
import type { SigningPrivateKey } from './keys.js';
import { MAX_NAME_LENGTH } from './org.js';
import { checkRevocationsOrg, isRevoked } from './revocation.js';
import { expectFingerprint, expectId, expectInteger, expectMembers, expectOneOf, expectPublicKey, expectString } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { checkNotExpired, checkStarted, checkTrust, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { DeviceCertBody, RevocationBody } from './types.js';

/** Checks the exact shape of a device certificate body. */
export function parseDeviceCertBody(value: unknown): DeviceCertBody {
  const body = expectMembers(value, 'device-cert', ['v', 'kind', 'org', 'device', 'name', 'platform', 'signingKey', 'sealingKey', 'issued', 'expires']);
  const cert: DeviceCertBody = {
    v: PROTOCOL_VERSION,
    kind: 'device-cert',
    org: expectFingerprint(body.org, 'device-cert.org'),
    device: expectId(body.device, 'device-cert.device'),
    name: expectString(body.name, 'device-cert.name', MAX_NAME_LENGTH),
    platform: expectOneOf(body.platform, 'device-cert.platform', ['terminal', 'web'] as const),
    signingKey: expectPublicKey(body.signingKey, 'device-cert.signingKey'),
    sealingKey: expectPublicKey(body.sealingKey, 'device-cert.sealingKey'),
    issued: expectInteger(body.issued, 'device-cert.issued'),
    expires: expectInteger(body.expires, 'device-cert.expires'),
  };
  if (cert.expires <= cert.issued) throw new ProtocolError('invalid_object', 'device-cert.expires must be after issued');
  return cert;
}

/** Issues a device certificate, signed by the Org Identity key. */
export async function issueDeviceCert(
  identityKey: SigningPrivateKey,
  fields: Omit<DeviceCertBody, 'v' | 'kind' | 'org'>,
): Promise<Signed<DeviceCertBody>> {
  const body = parseDeviceCertBody({ ...fields, v: PROTOCOL_VERSION, kind: 'device-cert', org: identityKey.publicKey.fingerprint() });
  return signObject(body, identityKey);
}

/**
 * Verifies a device certificate: header, shape, Org Identity signature,
 * validity window at `now` (with clock-skew leeway) and, when `revocations`
 * is given, that no verified revocation names the device.
 */
export async function verifyDeviceCert(
  value: unknown,
  trust: OrgTrust,
  now: number,
  revocations: readonly Verified<RevocationBody>[] = [],
): Promise<Verified<DeviceCertBody>> {
  checkTrust(trust);
  checkRevocationsOrg(revocations, trust.org);
  const signed = await verifyEnvelope(value, 'device-cert', trust.org, trust.identityKey, parseDeviceCertBody);
  checkStarted('device certificate', signed.body.issued, now);
  checkNotExpired('device certificate', signed.body.expires, now);
  if (isRevoked(revocations, 'device', signed.body.device)) {
    throw new ProtocolError('revoked', `device ${signed.body.device} is revoked`);
  }
  return markVerified(signed);
}
