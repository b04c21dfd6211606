import type { BrokerClient } from '../broker/client.js';
import {
  checkPolicyAllows, decryptSecret, isPolicyApprover, isProtocolError, isRevoked, openApproval, ProtocolError, verifyApproval, verifyConsumerCert,
  verifyDeviceCert, verifyPolicy, verifyRevocation, verifySecret,
  type ApprovalBody, type ConsumerCertBody, type DataKey, type DeviceCertBody, type OrgTrust, type PolicyBody, type RequestBody,
  type RevocationBody, type SealingPrivateKey, type SecretBody, type SecretBytes, type Signed, type Verified,
} from '../protocol/index.js';
import type { SeenStore } from './seen.js';

/**
 * Verification of a request's outcome, daemon side. Everything the broker
 * sends (approval, secret versions, certificates, revocations, policies) is
 * checked against the pinned Org Identity key before the ephemeral key opens
 * anything. Order: the daemon's own certificate, revocations, the approver's
 * device certificate, the policy that names that device and allows this
 * request, each secret version against that policy, the approval, then
 * opening and decrypting. Any failure throws a ProtocolError.
 */

/** Org objects fetched from the broker for one verification. */
export interface OrgObjects {
  devices: Signed<DeviceCertBody>[];
  policies: Signed<PolicyBody>[];
  revocations: Signed<RevocationBody>[];
}

export async function fetchOrgObjects(client: BrokerClient): Promise<OrgObjects> {
  const [certificates, policies, revocations] = await Promise.all([client.listCertificates(), client.listPolicies(), client.listRevocations()]);
  return { devices: certificates.devices, policies, revocations };
}

export interface ReleaseInput {
  trust: OrgTrust;
  consumerCert: Signed<ConsumerCertBody>;
  request: Verified<RequestBody>;
  ephemeralKey: SealingPrivateKey;
  approval: unknown;
  secrets: unknown;
  objects: OrgObjects;
  seen: SeenStore;
  now: number;
}

export interface OpenedRelease {
  approval: Verified<ApprovalBody>;
  device: Verified<DeviceCertBody>;
  policy: Verified<PolicyBody>;
  /** Plaintext per requested path; the caller owns and wipes them. */
  values: Map<string, SecretBytes>;
  secretVersions: Record<string, number>;
}

/** Verifies a released request's approval and secret versions and decrypts every path. */
export async function openRelease(input: ReleaseInput): Promise<OpenedRelease> {
  const { trust, request, now } = input;
  const revocations = await verifyRevocations(input.objects.revocations, trust);
  await verifyConsumerCert(input.consumerCert, trust, now, revocations);
  if (isRevoked(revocations, 'lease', request.body.id)) {
    throw new ProtocolError('revoked', `the lease of request ${request.body.id} was revoked before the daemon opened it`);
  }

  const approvalBody = approvalOf(input.approval);
  const device = await verifyApprover(approvalBody.device, input.objects.devices, trust, now, revocations);
  const policy = await selectPolicy(input.objects.policies, input.seen, trust, device.body.device, request);
  const secrets = await verifySecrets(input.secrets, request, policy, input.seen, trust);
  const approval = await verifyApproval(input.approval, { trust, request, deviceCert: device, policy, now });

  const keys = await openApproval(approval, request, input.ephemeralKey, secrets);
  const values = new Map<string, SecretBytes>();
  try {
    for (const [path, secret] of secrets) {
      const key = keys.get(path);
      if (key === undefined) throw new ProtocolError('binding_mismatch', `approval has no release for ${path}`);
      values.set(path, await decryptSecret(secret, key));
    }
  } catch (error) {
    for (const value of values.values()) value.wipe();
    throw error;
  } finally {
    wipeKeys(keys);
  }

  const secretVersions = Object.fromEntries([...secrets].map(([path, secret]) => [path, secret.body.version]));
  return { approval, device, policy, values, secretVersions };
}

/**
 * Verifies a denial far enough to name the device that made it. The request
 * ends as denied either way (the broker can always withhold a release), so
 * this only decides whether the name shown is one the OIK vouched for.
 */
export async function verifyDenial(input: Omit<ReleaseInput, 'ephemeralKey' | 'secrets'>): Promise<{ deviceName: string }> {
  const revocations = await verifyRevocations(input.objects.revocations, input.trust);
  const body = approvalOf(input.approval);
  const device = await verifyApprover(body.device, input.objects.devices, input.trust, input.now, revocations);
  const policy = await selectPolicy(input.objects.policies, input.seen, input.trust, device.body.device, input.request);
  const approval = await verifyApproval(input.approval, { trust: input.trust, request: input.request, deviceCert: device, policy, now: input.now });
  if (approval.body.decision !== 'deny') throw new ProtocolError('binding_mismatch', 'the broker reported a denial, but the approval approves');
  return { deviceName: device.body.name };
}

/** Verifies every revocation. One that fails verification is ignored: it could only come from the broker, which cannot revoke. */
async function verifyRevocations(values: unknown[], trust: OrgTrust): Promise<Verified<RevocationBody>[]> {
  const verified: Verified<RevocationBody>[] = [];
  for (const value of values) {
    try {
      verified.push(await verifyRevocation(value, trust));
    } catch (error) {
      if (!isProtocolError(error)) throw error;
    }
  }
  return verified;
}

function approvalOf(value: unknown): { device: string } {
  const body = (value as { body?: { device?: unknown } } | null)?.body;
  if (typeof body?.device !== 'string') throw new ProtocolError('invalid_object', 'the result carries no approval with a device id');
  return { device: body.device };
}

async function verifyApprover(
  device: string,
  devices: Signed<DeviceCertBody>[],
  trust: OrgTrust,
  now: number,
  revocations: Verified<RevocationBody>[],
): Promise<Verified<DeviceCertBody>> {
  const candidates = devices.filter((cert) => (cert as { body?: { device?: unknown } }).body?.device === device);
  if (candidates.length === 0) throw new ProtocolError('untrusted_signer', `the broker served no certificate for approving device ${device}`);
  let lastError: unknown;
  for (const candidate of candidates) {
    try {
      return await verifyDeviceCert(candidate, trust, now, revocations);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/**
 * Returns the newest verified policy that names `device` as an approver and
 * allows this consumer and requester every requested path. A policy older
 * than the version seen before is a rollback and fails the release, when it
 * is the one that would apply.
 */
async function selectPolicy(
  policies: Signed<PolicyBody>[],
  seen: SeenStore,
  trust: OrgTrust,
  device: string,
  request: Verified<RequestBody>,
): Promise<Verified<PolicyBody>> {
  let firstError: ProtocolError | undefined;
  for (const candidate of policies) {
    let policy: Verified<PolicyBody>;
    try {
      policy = await verifyPolicy(candidate, trust, { minVersion: seen.policyVersion(nameOf(candidate)) });
    } catch (error) {
      if (!isProtocolError(error)) throw error;
      firstError ??= error;
      continue;
    }
    if (!isPolicyApprover(policy.body, device)) continue;
    try {
      for (const path of request.body.paths) {
        checkPolicyAllows(policy.body, { consumer: request.body.consumer, requester: request.body.requester, path });
      }
    } catch (error) {
      if (!isProtocolError(error)) throw error;
      continue;
    }
    return policy;
  }
  throw firstError ?? new ProtocolError('policy_mismatch', `no verified policy names device ${device} and allows request ${request.body.id}`);
}

function nameOf(policy: unknown): string {
  const name = (policy as { body?: { name?: unknown } } | null)?.body?.name;
  return typeof name === 'string' ? name : '';
}

/** Verifies one secret version per requested path, with rollback minimums from the seen state. */
async function verifySecrets(
  values: unknown,
  request: Verified<RequestBody>,
  policy: Verified<PolicyBody>,
  seen: SeenStore,
  trust: OrgTrust,
): Promise<Map<string, Verified<SecretBody>>> {
  if (!Array.isArray(values)) throw new ProtocolError('invalid_object', 'the result carries no secret versions');
  const secrets = new Map<string, Verified<SecretBody>>();
  for (const path of request.body.paths) {
    const candidate: unknown = values.find((value) => (value as { body?: { path?: unknown } } | null)?.body?.path === path);
    if (candidate === undefined) throw new ProtocolError('binding_mismatch', `the result carries no secret version for ${path}`);
    secrets.set(path, await verifySecret(candidate, trust, policy, { minVersion: seen.secretVersion(path) }));
  }
  return secrets;
}

function wipeKeys(keys: Map<string, DataKey>): void {
  for (const key of keys.values()) key.wipe();
}
