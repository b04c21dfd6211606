import {
  checkPolicyAllows, isPolicyApprover, ProtocolError, verifyConsumerCert, verifyPolicy, verifyRequest, verifySecret,
  type ConsumerCertBody, type DeviceCertBody, type OrgTrust, type PolicyBody, type RequestBody, type RevocationBody, type SecretBody,
  type Verified,
} from '../protocol/index.js';
import { ApproverError } from './errors.js';

/**
 * Verification of a request bundle as the broker delivers it, shared by the
 * terminal approver and the web approver (so this file and its imports must
 * stay browser-safe: no node: modules, no Buffer). Nothing in the bundle is
 * trusted for being served: every object is checked against the pinned Org
 * Identity key, and only the verified signed request is shown.
 */

/** The bundle the broker sends a device for one request (see docs/broker-api.md). */
export type { RequestBundle } from '../broker/client.js';

export interface VerifiedBundle {
  request: Verified<RequestBody>;
  policy: Verified<PolicyBody>;
  secrets: Verified<SecretBody>[];
  consumerCert: Verified<ConsumerCertBody>;
}

/** The highest versions this device has seen, which later bundles must not roll back. */
export interface SeenVersions {
  policyVersions: Record<string, number>;
  secretVersions: Record<string, number>;
}

export interface BundleCheckContext {
  trust: OrgTrust;
  /** This device's own certificate, verified already. */
  device: Verified<DeviceCertBody>;
  /** The versions seen, and as keys of `requests` the ids of requests this device already decided. */
  seen: Readonly<SeenVersions> & { readonly requests: Readonly<Record<string, unknown>> };
  revocations: readonly Verified<RevocationBody>[];
  now: number;
}

/**
 * Verifies a bundle and throws ProtocolError or ApproverError on the first
 * failure. The checks run in this order:
 * 1. the consumer certificate: signature, validity and revocations;
 * 2. the policy, against the highest version seen;
 * 3. the request: signature, binding to the certificate, expiry;
 * 4. the request id was never decided on this device;
 * 5. this device is a policy approver, the policy allows the requester for
 *    every path, and the requested lease fits the policy's maximum;
 * 6. exactly one secret version per requested path: fits the policy, not
 *    older than the highest version seen, not deleted, and granted to this device.
 */
export async function verifyBundle(bundle: unknown, context: BundleCheckContext): Promise<VerifiedBundle> {
  const { trust, device, seen, revocations, now } = context;
  const parts = bundleParts(bundle);

  const consumerCert = await verifyConsumerCert(parts.consumerCert, trust, now, revocations);
  const policyName = policyNameOf(parts.policy);
  const policy = await verifyPolicy(parts.policy, trust, { minVersion: seen.policyVersions[policyName] ?? 0 });
  const request = await verifyRequest(parts.request, trust, consumerCert, now);

  if (Object.hasOwn(seen.requests, request.body.id)) {
    throw new ApproverError('request_replayed', `request ${request.body.id} was already decided on this device`);
  }
  if (!isPolicyApprover(policy.body, device.body.device)) {
    throw new ProtocolError('not_approver', `this device is not an approver of policy ${policy.body.name} v${policy.body.version}`);
  }
  for (const path of request.body.paths) {
    checkPolicyAllows(policy.body, { consumer: request.body.consumer, requester: request.body.requester, path });
  }
  if (request.body.leaseSeconds > policy.body.maxLeaseSeconds) {
    throw new ProtocolError('lease_exceeded', `request asks for a lease of ${request.body.leaseSeconds} s, policy ${policy.body.name} allows at most ${policy.body.maxLeaseSeconds} s`);
  }

  const secrets = await verifySecrets(parts.secrets, request, policy, context);
  return { request, policy, secrets, consumerCert };
}

async function verifySecrets(
  secrets: unknown[],
  request: Verified<RequestBody>,
  policy: Verified<PolicyBody>,
  context: BundleCheckContext,
): Promise<Verified<SecretBody>[]> {
  const { trust, device, seen } = context;
  if (secrets.length !== request.body.paths.length) {
    throw new ApproverError('bundle_mismatch', `bundle carries ${secrets.length} secret versions for ${request.body.paths.length} requested paths`);
  }
  const verified: Verified<SecretBody>[] = [];
  for (const path of request.body.paths) {
    const matching = secrets.filter((secret) => pathOf(secret) === path);
    const candidate = matching[0];
    if (candidate === undefined || matching.length > 1) {
      throw new ApproverError('bundle_mismatch', `bundle carries ${matching.length} secret versions for ${path}, expected 1`);
    }
    const secret = await verifySecret(candidate, trust, policy, { minVersion: seen.secretVersions[path] ?? 0 });
    if (secret.body.deleted) throw new ProtocolError('secret_deleted', `${path} version ${secret.body.version} is deleted`);
    if (!secret.body.grants.some((grant) => grant.device === device.body.device)) {
      throw new ApproverError('not_granted', `${path} version ${secret.body.version} is not granted to this device`);
    }
    verified.push(secret);
  }
  return verified;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bundleParts(bundle: unknown): { request: unknown; policy: unknown; secrets: unknown[]; consumerCert: unknown } {
  if (!isObject(bundle) || !Array.isArray(bundle.secrets)) {
    throw new ProtocolError('invalid_object', 'request bundle must be {request, policy, secrets[], consumerCert}');
  }
  return { request: bundle.request, policy: bundle.policy, secrets: bundle.secrets as unknown[], consumerCert: bundle.consumerCert };
}

function policyNameOf(policy: unknown): string {
  const name = isObject(policy) && isObject(policy.body) ? policy.body.name : undefined;
  if (typeof name !== 'string') throw new ProtocolError('invalid_object', 'bundle policy has no name');
  return name;
}

function pathOf(secret: unknown): unknown {
  return isObject(secret) && isObject(secret.body) ? secret.body.path : undefined;
}

/** Records a decided request and the versions it was decided under, so later bundles cannot roll them back. */
export function recordDecision(seen: SeenVersions & { requests: Record<string, number> }, verified: VerifiedBundle, forgetAfter: number): void {
  seen.requests[verified.request.body.id] = forgetAfter;
  recordSeenVersions(seen, verified);
}

/** Raises the highest policy and secret versions seen to those of a decided bundle. */
export function recordSeenVersions(seen: SeenVersions, verified: VerifiedBundle): void {
  const { name, version } = verified.policy.body;
  seen.policyVersions[name] = Math.max(seen.policyVersions[name] ?? 0, version);
  for (const secret of verified.secrets) {
    const { path } = secret.body;
    seen.secretVersions[path] = Math.max(seen.secretVersions[path] ?? 0, secret.body.version);
  }
}
