import {
  parseEnvelope, parseSecretBody, policyAllows, requestHash, verifyApproval, verifyConsumerCert, verifyDeviceCert, verifyOrg, verifyPolicy,
  verifyRequest, verifyRevocation, verifySecret, ProtocolError, type OrgTrust, type Signed, type Verified,
} from '../protocol/index.js';
import type {
  ApprovalBody, ConsumerCertBody, DeviceCertBody, OrgBody, PolicyBody, RequestBody, RevocationBody, SecretBody,
} from '../protocol/index.js';

/**
 * The broker's checks of signed objects, all through the protocol's per-kind
 * verifiers. The broker checks to reject garbage early and to pick
 * approvers; clients re-verify everything themselves and never rely on it.
 */

export type CertificateBody = DeviceCertBody | ConsumerCertBody;

export { requestHash };

/** Verifies an org registration: self-signed by its identity key, whose fingerprint is the org id. */
export async function verifyOrgObject(value: unknown): Promise<Verified<OrgBody>> {
  const claimed = parseEnvelope(value).body.org;
  if (typeof claimed !== 'string') throw new ProtocolError('invalid_object', 'org must be a string');
  return (await verifyOrg(value, claimed)).org;
}

/** Verifies a device or consumer certificate against the org key, valid at `now`. */
export async function verifyCertificate(value: unknown, trust: OrgTrust, now: number): Promise<Verified<CertificateBody>> {
  const kind = parseEnvelope(value).body.kind;
  if (kind === 'device-cert') return verifyDeviceCert(value, trust, now);
  if (kind === 'consumer-cert') return verifyConsumerCert(value, trust, now);
  throw new ProtocolError('invalid_object', `expected a device-cert or consumer-cert, got ${JSON.stringify(kind)}`);
}

export function verifyRevocationObject(value: unknown, trust: OrgTrust): Promise<Verified<RevocationBody>> {
  return verifyRevocation(value, trust);
}

/** Verifies a policy's signature and shape; the caller enforces that versions only grow. */
export function verifyPolicyObject(value: unknown, trust: OrgTrust): Promise<Verified<PolicyBody>> {
  return verifyPolicy(value, trust, { minVersion: 0 });
}

/** Returns the policy name and version a secret version pins, before any signature check. */
export function pinnedPolicy(value: unknown): { name: string; version: number } {
  const body = parseSecretBody(parseEnvelope(value).body);
  return { name: body.policy.name, version: body.policy.version };
}

/** Verifies a secret version against the stored policy it pins; the caller enforces that versions only grow. */
export async function verifySecretObject(value: unknown, trust: OrgTrust, policy: Signed<PolicyBody>): Promise<Verified<SecretBody>> {
  const verifiedPolicy = await verifyPolicy(policy, trust, { minVersion: 0 });
  return verifySecret(value, trust, verifiedPolicy, { minVersion: 0 });
}

export async function verifyRequestObject(
  value: unknown, trust: OrgTrust, consumerCert: Signed<ConsumerCertBody>, now: number,
): Promise<Verified<RequestBody>> {
  const cert = await verifyConsumerCert(consumerCert, trust, now);
  return verifyRequest(value, trust, cert, now);
}

/** Verifies an approval or denial against the stored request, the device's certificate and the policy that made it eligible. */
export async function verifyApprovalObject(
  value: unknown,
  context: { trust: OrgTrust; request: Signed<RequestBody>; deviceCert: Signed<DeviceCertBody>; policy: Signed<PolicyBody>; now: number },
): Promise<Verified<ApprovalBody>> {
  const { trust, now } = context;
  const deviceCert = await verifyDeviceCert(context.deviceCert, trust, now);
  const policy = await verifyPolicy(context.policy, trust, { minVersion: 0 });
  // The stored request was verified when it was accepted; it is re-verified
  // here only for its type, against the certificate it was accepted under.
  const request = context.request as Verified<RequestBody>;
  return verifyApproval(value, { trust, request, deviceCert, policy: policy, now });
}

/**
 * Reports whether a policy makes its approvers eligible for a request: it
 * allows this consumer and requesting process every requested path (the
 * protocol's policyAllows: consumer listed, a path glob matches, a requester
 * rule matches) and its quorum is 1. M-of-N policies are not served yet.
 */
export function policyMakesEligible(policy: PolicyBody, request: RequestBody): boolean {
  if (policy.quorum !== 1) return false;
  return request.paths.every((path) => policyAllows(policy, { consumer: request.consumer, requester: request.requester, path }));
}

/** The key a certificate authenticates with: the device signing key or the consumer host key. */
export function certificateAuthKey(cert: Signed<CertificateBody>): string {
  return cert.body.kind === 'device-cert' ? cert.body.signingKey : cert.body.hostKey;
}

export function certificateId(cert: Signed<CertificateBody>): { kind: 'device' | 'consumer'; id: string } {
  return cert.body.kind === 'device-cert' ? { kind: 'device', id: cert.body.device } : { kind: 'consumer', id: cert.body.consumer };
}
