import type { DataKey } from './aead.js';
import { PROTOCOL_VERSION } from './contexts.js';
import { ProtocolError } from './errors.js';
import { openGrant, openRelease, sealRelease, type ReleaseBinding } from './hpke.js';
import { SealingPublicKey, SigningPublicKey, type SealingPrivateKey, type SigningPrivateKey } from './keys.js';
import { checkSecretPath } from './paths.js';
import { checkPolicyAllows, isPolicyApprover, MAX_LEASE_SECONDS, policyHash } from './policy.js';
import { MAX_REQUEST_PATHS, requestHash } from './request.js';
import { expectArray, expectAuditHeadRef, expectBase64Url, expectFingerprint, expectId, expectInteger, expectMembers, expectOneOf } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { checkNotExpired, checkTrust, CLOCK_SKEW_SECONDS, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { ApprovalBody, AuditHeadRef, DeviceCertBody, PolicyBody, Release, RequestBody, SecretBody } from './types.js';

const MAX_SHARES = 255;

/**
 * The hash of the policy each approval was verified against, keyed by the
 * object verifyApproval returned. openApproval requires every secret version
 * to pin that same policy, so an approval checked against a laxer policy (a
 * longer maximum lease, other consumers) cannot open secrets of a stricter one.
 */
const approvalPolicies = new WeakMap<object, string>();

function parseRelease(value: unknown, name: string): Release {
  const release = expectMembers(value, name, ['path', 'secretVersion', 'scheme', 'enc', 'ct'], ['threshold', 'share']);
  const parsed: Release = {
    path: checkSecretPath(release.path, `${name}.path`),
    secretVersion: expectInteger(release.secretVersion, `${name}.secretVersion`, 1),
    scheme: expectOneOf(release.scheme, `${name}.scheme`, ['whole', 'shamir'] as const),
    enc: '',
    ct: '',
  };
  if (parsed.scheme === 'shamir') {
    parsed.threshold = expectInteger(release.threshold, `${name}.threshold`, 2, MAX_SHARES);
    parsed.share = expectInteger(release.share, `${name}.share`, 1, MAX_SHARES);
  } else if (release.threshold !== undefined || release.share !== undefined) {
    throw new ProtocolError('invalid_object', `${name}: a whole-key release has no threshold or share`);
  }
  parsed.enc = expectBase64Url(release.enc, `${name}.enc`, 32);
  parsed.ct = expectBase64Url(release.ct, `${name}.ct`, 48);
  return parsed;
}

/**
 * Checks the exact shape of an approval body. An approval carries a lease
 * of at least one second and at least one release; a denial carries lease 0
 * and no releases.
 */
export function parseApprovalBody(value: unknown): ApprovalBody {
  const body = expectMembers(value, 'approval', ['v', 'kind', 'org', 'request', 'requestHash', 'device', 'decision', 'leaseSeconds', 'releases', 'created', 'auditHead']);
  const decision = expectOneOf(body.decision, 'approval.decision', ['approve', 'deny'] as const);
  const approve = decision === 'approve';
  const approval: ApprovalBody = {
    v: PROTOCOL_VERSION,
    kind: 'approval',
    org: expectFingerprint(body.org, 'approval.org'),
    request: expectId(body.request, 'approval.request'),
    requestHash: expectBase64Url(body.requestHash, 'approval.requestHash', 32),
    device: expectId(body.device, 'approval.device'),
    decision,
    leaseSeconds: expectInteger(body.leaseSeconds, 'approval.leaseSeconds', approve ? 1 : 0, approve ? MAX_LEASE_SECONDS : 0),
    releases: expectArray(body.releases, 'approval.releases', approve ? 1 : 0, approve ? MAX_REQUEST_PATHS : 0, parseRelease),
    created: expectInteger(body.created, 'approval.created'),
    auditHead: expectAuditHeadRef(body.auditHead, 'approval.auditHead'),
  };
  if (new Set(approval.releases.map((release) => release.path)).size !== approval.releases.length) {
    throw new ProtocolError('invalid_object', 'approval.releases has two releases for one path');
  }
  return approval;
}

export interface ApproveInput {
  deviceKey: SigningPrivateKey;
  sealingKey: SealingPrivateKey;
  deviceCert: Verified<DeviceCertBody>;
  request: Verified<RequestBody>;
  /** The verified secret version for each requested path. */
  secrets: readonly Verified<SecretBody>[];
  leaseSeconds: number;
  created: number;
  auditHead: AuditHeadRef | null;
}

/**
 * Approves a request (approver side): for each requested path, opens this
 * device's grant and re-seals the DEK to the request's ephemeral key, bound
 * to the request, then signs the approval. Each DEK is wiped after use.
 */
export async function approveRequest(input: ApproveInput): Promise<Signed<ApprovalBody>> {
  const { request, deviceCert } = input;
  const device = deviceCert.body.device;
  const hash = requestHash(request);
  const ephemeralKey = SealingPublicKey.fromBase64Url(request.body.ephemeralKey, 'request.ephemeralKey');
  if (!input.deviceKey.publicKey.equals(SigningPublicKey.fromBase64Url(deviceCert.body.signingKey))) {
    throw new ProtocolError('binding_mismatch', 'device signing key does not match the device certificate');
  }

  const releases: Release[] = [];
  for (const path of request.body.paths) {
    const secret = input.secrets.find((candidate) => candidate.body.path === path);
    if (secret === undefined) throw new ProtocolError('binding_mismatch', `no secret version given for ${path}`);
    const grant = secret.body.grants.find((candidate) => candidate.device === device);
    if (grant === undefined) throw new ProtocolError('not_approver', `secret ${path} v${secret.body.version} has no grant for device ${device}`);
    if (grant.scheme !== 'whole') throw new ProtocolError('not_implemented', 'releasing Shamir shares is not supported yet');

    const dek = await openGrant(grant, secret.body, device, input.sealingKey);
    try {
      const binding: ReleaseBinding = { org: request.body.org, request: request.body.id, requestHash: hash, device, path, secretVersion: secret.body.version };
      releases.push(await sealRelease(binding, dek, ephemeralKey));
    } finally {
      dek.wipe();
    }
  }

  return signApproval(input.deviceKey, {
    org: request.body.org, request: request.body.id, requestHash: hash, device, decision: 'approve',
    leaseSeconds: input.leaseSeconds, releases, created: input.created, auditHead: input.auditHead,
  });
}

/** Denies a request: a signed approval with decision 'deny', lease 0 and no releases. */
export async function denyRequest(input: {
  deviceKey: SigningPrivateKey;
  device: string;
  request: Verified<RequestBody>;
  created: number;
  auditHead: AuditHeadRef | null;
}): Promise<Signed<ApprovalBody>> {
  return signApproval(input.deviceKey, {
    org: input.request.body.org, request: input.request.body.id, requestHash: requestHash(input.request), device: input.device,
    decision: 'deny', leaseSeconds: 0, releases: [], created: input.created, auditHead: input.auditHead,
  });
}

/** Signs an approval body with a device signing key after checking its shape. */
export async function signApproval(deviceKey: SigningPrivateKey, fields: Omit<ApprovalBody, 'v' | 'kind'>): Promise<Signed<ApprovalBody>> {
  return signObject(parseApprovalBody({ ...fields, v: PROTOCOL_VERSION, kind: 'approval' }), deviceKey);
}

export interface ApprovalContext {
  trust: OrgTrust;
  request: Verified<RequestBody>;
  deviceCert: Verified<DeviceCertBody>;
  policy: Verified<PolicyBody>;
  now: number;
}

/**
 * Verifies an approval or denial, in order: header, shape and the device
 * signature; the device and request binding (request id and hash); the device
 * is a policy approver and the policy allows the request; the request and
 * device certificate have not expired at `now` and the approval was made in
 * the request's lifetime; for an approval, the lease fits both the policy and
 * the request, and there is exactly one release per requested path, each of
 * the scheme the quorum calls for.
 */
export async function verifyApproval(value: unknown, context: ApprovalContext): Promise<Verified<ApprovalBody>> {
  const { trust, request, deviceCert, policy, now } = context;
  checkTrust(trust);
  if (deviceCert.body.org !== trust.org || request.body.org !== trust.org || policy.body.org !== trust.org) {
    throw new ProtocolError('wrong_org', 'device certificate, request and policy must all belong to the trusted org');
  }
  const deviceKey = SigningPublicKey.fromBase64Url(deviceCert.body.signingKey, 'device-cert.signingKey');
  const signed = await verifyEnvelope(value, 'approval', trust.org, deviceKey, parseApprovalBody);
  const body = signed.body;

  if (body.device !== deviceCert.body.device) {
    throw new ProtocolError('binding_mismatch', `approval names device ${body.device}, certificate is for ${deviceCert.body.device}`);
  }
  if (body.request !== request.body.id || body.requestHash !== requestHash(request)) {
    throw new ProtocolError('binding_mismatch', `approval is for request ${body.request} with another hash, not for request ${request.body.id}`);
  }
  if (!isPolicyApprover(policy.body, body.device)) {
    throw new ProtocolError('not_approver', `device ${body.device} is not an approver of policy ${policy.body.name}`);
  }
  for (const path of request.body.paths) {
    checkPolicyAllows(policy.body, { consumer: request.body.consumer, requester: request.body.requester, path });
  }

  checkNotExpired('device certificate', deviceCert.body.expires, now);
  checkNotExpired('request', request.body.expires, now);
  if (body.created > request.body.expires + CLOCK_SKEW_SECONDS || body.created < request.body.created - CLOCK_SKEW_SECONDS) {
    throw new ProtocolError('expired', `approval made at ${body.created}, outside the request's lifetime ${request.body.created}..${request.body.expires}`);
  }

  if (body.decision === 'approve') checkReleases(body, request.body, policy.body);
  const verified = markVerified(signed);
  approvalPolicies.set(verified, policyHash(policy));
  return verified;
}

function checkReleases(body: ApprovalBody, request: RequestBody, policy: PolicyBody): void {
  if (body.leaseSeconds > policy.maxLeaseSeconds || body.leaseSeconds > request.leaseSeconds) {
    throw new ProtocolError('lease_exceeded', `lease ${body.leaseSeconds} s exceeds the request's ${request.leaseSeconds} s or the policy's ${policy.maxLeaseSeconds} s`);
  }
  const released = body.releases.map((release) => release.path).sort();
  const requested = [...request.paths].sort();
  if (released.join('\n') !== requested.join('\n')) {
    throw new ProtocolError('binding_mismatch', `approval releases [${released.join(', ')}], request asked for [${requested.join(', ')}]`);
  }
  const scheme = policy.quorum === 1 ? 'whole' : 'shamir';
  for (const release of body.releases) {
    if (release.scheme !== scheme || (release.scheme === 'shamir' && release.threshold !== policy.quorum)) {
      throw new ProtocolError('policy_mismatch', `release for ${release.path} does not fit quorum ${policy.quorum}`);
    }
  }
}

/**
 * Opens a verified approval (daemon side) with the request's ephemeral
 * private key and returns the DEK for each path. `approval` must be the
 * object verifyApproval returned. `secrets` maps each requested path to its
 * verified secret version, whose version must be the one the release names
 * and which must pin the policy the approval was verified against
 * ('policy_mismatch' otherwise). Throws 'approval_denied' for a denial. On
 * any failure, keys opened so far are wiped.
 */
export async function openApproval(
  approval: Verified<ApprovalBody>,
  request: Verified<RequestBody>,
  ephemeralKey: SealingPrivateKey,
  secrets: ReadonlyMap<string, Verified<SecretBody>>,
): Promise<Map<string, DataKey>> {
  const body = approval.body;
  const approvalPolicyHash = approvalPolicies.get(approval);
  if (approvalPolicyHash === undefined) {
    throw new ProtocolError('binding_mismatch', 'approval was not returned by verifyApproval');
  }
  if (body.request !== request.body.id || body.requestHash !== requestHash(request)) {
    throw new ProtocolError('binding_mismatch', `approval is for request ${body.request}, not ${request.body.id}`);
  }
  if (body.decision !== 'approve') throw new ProtocolError('approval_denied', `device ${body.device} denied request ${body.request}`);
  if (ephemeralKey.publicKey.toBase64Url() !== request.body.ephemeralKey) {
    throw new ProtocolError('binding_mismatch', 'ephemeral private key does not belong to this request');
  }

  const keys = new Map<string, DataKey>();
  try {
    for (const release of body.releases) {
      const secret = secrets.get(release.path);
      if (secret?.body.path !== release.path) throw new ProtocolError('binding_mismatch', `no secret version given for ${release.path}`);
      if (secret.body.version !== release.secretVersion) {
        throw new ProtocolError('binding_mismatch', `release is for ${release.path} v${release.secretVersion}, secret given is v${secret.body.version}`);
      }
      if (secret.body.policy.hash !== approvalPolicyHash) {
        throw new ProtocolError('policy_mismatch', `secret ${release.path} pins policy ${secret.body.policy.name} v${secret.body.policy.version}, not the policy the approval was verified against`);
      }
      if (release.scheme !== 'whole') throw new ProtocolError('not_implemented', 'combining Shamir shares is not supported yet');
      const binding: ReleaseBinding = {
        org: body.org, request: body.request, requestHash: body.requestHash, device: body.device, path: release.path, secretVersion: release.secretVersion,
      };
      keys.set(release.path, await openRelease(release, binding, ephemeralKey));
    }
    return keys;
  } catch (error) {
    for (const key of keys.values()) key.wipe();
    throw error;
  }
}
