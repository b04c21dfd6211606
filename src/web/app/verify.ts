import {
  checkPolicyAllows, isPolicyApprover, ProtocolError, SigningPublicKey, verifyConsumerCert, verifyDeviceCert, verifyPolicy, verifyRequest,
  verifySecret,
  type ConsumerCertBody, type DeviceCertBody, type OrgTrust, type PolicyBody, type RequestBody, type RevocationBody, type SecretBody,
  type Signed, type Verified,
} from '../../protocol/index.js';
import type { RequestBundle } from '../../broker/client.js';
import { ApproverError } from './errors.js';

/**
 * Verifies a request bundle the broker delivered, against the pinned Org
 * Identity key only: nothing in it is trusted because the broker sent it.
 * Everything the detail screen shows comes from the verified request body.
 */

export interface VerifiedBundle {
  request: Verified<RequestBody>;
  policy: Verified<PolicyBody>;
  secrets: Verified<SecretBody>[];
  consumerCert: Verified<ConsumerCertBody>;
}

export interface BundleContext {
  trust: OrgTrust;
  deviceCert: Verified<DeviceCertBody>;
  now: number;
  /** Request ids this device already approved or denied. */
  decided: ReadonlySet<string>;
  secretVersions: Readonly<Record<string, number>>;
  policyVersions: Readonly<Record<string, number>>;
  revocations?: readonly Verified<RevocationBody>[];
}

/**
 * Checks, in order: the consumer certificate (Org Identity signature,
 * validity, not revoked); the request (consumer host signature, lifetime,
 * not expired); that this device never decided it before; the policy (Org
 * Identity signature, no rollback), that it lists this device and allows the
 * consumer and requesting process every path; then one secret version per
 * requested path (signature, no rollback, pinned to this policy, with a grant
 * for this device). Throws ProtocolError or ApproverError with a stable code.
 */
export async function verifyBundle(bundle: RequestBundle, context: BundleContext): Promise<VerifiedBundle> {
  const { trust, deviceCert, now } = context;
  const device = deviceCert.body.device;

  const consumerCert = await verifyConsumerCert(bundle.consumerCert, trust, now, context.revocations);
  const request = await verifyRequest(bundle.request, trust, consumerCert, now);
  if (context.decided.has(request.body.id)) {
    throw new ApproverError('already_decided', `This device already decided request ${request.body.id}; a request is decided once.`);
  }

  const policy = await verifyPolicy(bundle.policy, trust, { minVersion: context.policyVersions[bundle.policy.body.name] ?? 0 });
  if (!isPolicyApprover(policy.body, device)) {
    throw new ProtocolError('not_approver', `policy ${policy.body.name} v${policy.body.version} does not list this device as an approver`);
  }
  for (const path of request.body.paths) {
    checkPolicyAllows(policy.body, { consumer: request.body.consumer, requester: request.body.requester, path });
  }
  if (request.body.leaseSeconds > policy.body.maxLeaseSeconds) {
    throw new ProtocolError('lease_exceeded', `request asks for ${request.body.leaseSeconds} s, policy allows at most ${policy.body.maxLeaseSeconds} s`);
  }

  const secrets: Verified<SecretBody>[] = [];
  for (const path of request.body.paths) {
    const matching = bundle.secrets.filter((secret: Signed<SecretBody>) => secret.body.path === path);
    if (matching.length !== 1 || matching[0] === undefined) {
      throw new ProtocolError('binding_mismatch', `bundle has ${matching.length} secret versions for ${path}, expected 1`);
    }
    const secret = await verifySecret(matching[0], trust, policy, { minVersion: context.secretVersions[path] ?? 0 });
    if (secret.body.deleted) throw new ProtocolError('secret_deleted', `secret ${path} v${secret.body.version} is deleted`);
    if (!secret.body.grants.some((grant) => grant.device === device)) {
      throw new ProtocolError('not_approver', `secret ${path} v${secret.body.version} has no grant for this device`);
    }
    secrets.push(secret);
  }
  if (bundle.secrets.length !== request.body.paths.length) {
    throw new ProtocolError('binding_mismatch', `bundle carries ${bundle.secrets.length} secret versions for ${request.body.paths.length} requested paths`);
  }
  return { request, policy, secrets, consumerCert };
}

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
