import { SigningPublicKey, verifyDeviceCert, type DeviceCertBody, type OrgTrust, type Verified } from '../../protocol/index.js';
import { ApproverError } from './errors.js';

// Request bundles are verified by src/approver/verify.ts, which the terminal approver uses too.

/**
 * Verifies the certificate the admin issued for this device: Org Identity
 * signature and validity, platform 'web', and exactly the public keys this
 * device derived from its passkey.
 */
export async function verifyOwnCertificate(
  certificate: unknown,
  trust: OrgTrust,
  keys: { signingKey: string; sealingKey: string },
  now: number,
): Promise<Verified<DeviceCertBody>> {
  const cert = await verifyDeviceCert(certificate, trust, now);
  const signing = SigningPublicKey.fromBase64Url(cert.body.signingKey);
  if (!signing.equals(SigningPublicKey.fromBase64Url(keys.signingKey)) || cert.body.sealingKey !== keys.sealingKey) {
    throw new ApproverError('certificate_mismatch', 'The certificate the broker returned is for other keys than this device\'s. It was not accepted.');
  }
  if (cert.body.platform !== 'web') {
    throw new ApproverError('certificate_mismatch', `The certificate names platform ${cert.body.platform}, expected web. It was not accepted.`);
  }
  return cert;
}
