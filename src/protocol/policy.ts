import { PROTOCOL_VERSION, HASH_CONTEXT } from './contexts.js';
import { ProtocolError } from './errors.js';
import { hashObject } from './hash.js';
import type { SigningPrivateKey } from './keys.js';
import { MAX_NAME_LENGTH } from './org.js';
import { checkPathGlob, checkSecretPath, matchPathGlob } from './paths.js';
import { expectArray, expectFingerprint, expectId, expectInteger, expectMembers, expectString } from './shape.js';
import { signObject, type Signed } from './signed.js';
import { checkMinVersion, checkTrust, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { PolicyBody, Requester, RequesterRule } from './types.js';

export const MAX_POLICY_ITEMS = 64;
export const MAX_RULE_ITEMS = 64;
export const MAX_USER_LENGTH = 64;
export const MAX_EXE_LENGTH = 4096;
/** Longest lease any policy may allow: 30 days, in seconds. */
export const MAX_LEASE_SECONDS = 30 * 24 * 3600;
const MAX_UID = 2 ** 32 - 1;

function parseRequesterRule(value: unknown, name: string): RequesterRule {
  const rule = expectMembers(value, name, [], ['users', 'uids', 'exes']);
  const parsed: RequesterRule = {};
  if (rule.users !== undefined) {
    parsed.users = expectArray(rule.users, `${name}.users`, 1, MAX_RULE_ITEMS, (item, itemName) => expectString(item, itemName, MAX_USER_LENGTH), true);
  }
  if (rule.uids !== undefined) {
    parsed.uids = expectArray(rule.uids, `${name}.uids`, 1, MAX_RULE_ITEMS, (item, itemName) => expectInteger(item, itemName, 0, MAX_UID), true);
  }
  if (rule.exes !== undefined) {
    parsed.exes = expectArray(rule.exes, `${name}.exes`, 1, MAX_RULE_ITEMS, (item, itemName) => expectString(item, itemName, MAX_EXE_LENGTH), true);
  }
  return parsed;
}

/** Checks the exact shape of a policy body, including quorum <= number of approvers. */
export function parsePolicyBody(value: unknown): PolicyBody {
  const body = expectMembers(value, 'policy', [
    'v', 'kind', 'org', 'name', 'version', 'paths', 'approvers', 'quorum', 'maxLeaseSeconds', 'consumers', 'requesters', 'issued',
  ]);
  const policy: PolicyBody = {
    v: PROTOCOL_VERSION,
    kind: 'policy',
    org: expectFingerprint(body.org, 'policy.org'),
    name: expectString(body.name, 'policy.name', MAX_NAME_LENGTH),
    version: expectInteger(body.version, 'policy.version', 1),
    paths: expectArray(body.paths, 'policy.paths', 1, MAX_POLICY_ITEMS, checkPathGlob, true),
    approvers: expectArray(body.approvers, 'policy.approvers', 1, MAX_POLICY_ITEMS, expectId, true),
    quorum: expectInteger(body.quorum, 'policy.quorum', 1, MAX_POLICY_ITEMS),
    maxLeaseSeconds: expectInteger(body.maxLeaseSeconds, 'policy.maxLeaseSeconds', 1, MAX_LEASE_SECONDS),
    consumers: expectArray(body.consumers, 'policy.consumers', 0, MAX_POLICY_ITEMS, expectId, true),
    requesters: expectArray(body.requesters, 'policy.requesters', 0, MAX_POLICY_ITEMS, parseRequesterRule),
    issued: expectInteger(body.issued, 'policy.issued'),
  };
  if (policy.quorum > policy.approvers.length) {
    throw new ProtocolError('invalid_object', `policy.quorum ${policy.quorum} exceeds the ${policy.approvers.length} approvers`);
  }
  return policy;
}

/** Signs a policy with the Org Identity key. */
export async function signPolicy(identityKey: SigningPrivateKey, fields: Omit<PolicyBody, 'v' | 'kind' | 'org'>): Promise<Signed<PolicyBody>> {
  const body = parsePolicyBody({ ...fields, v: PROTOCOL_VERSION, kind: 'policy', org: identityKey.publicKey.fingerprint() });
  return signObject(body, identityKey);
}

/** Returns the policy hash secret versions pin: hashObject('stillvault/v1/policy-hash', body). */
export function policyHash(policy: Signed<PolicyBody>): string {
  return hashObject(HASH_CONTEXT.policyHash, policy.body);
}

/**
 * Verifies a policy: header, shape, Org Identity signature, then rollback.
 * `minVersion` is the highest policy version the caller has seen under this
 * name; a lower version throws 'policy_rollback'. The caller stores the
 * returned version as its new minimum.
 */
export async function verifyPolicy(value: unknown, trust: OrgTrust, options: { minVersion: number }): Promise<Verified<PolicyBody>> {
  checkTrust(trust);
  checkMinVersion(options.minVersion);
  const signed = await verifyEnvelope(value, 'policy', trust.org, trust.identityKey, parsePolicyBody);
  if (signed.body.version < options.minVersion) {
    throw new ProtocolError('policy_rollback', `policy ${signed.body.name} version ${signed.body.version} is older than version ${options.minVersion} already seen`);
  }
  return markVerified(signed);
}

/** Reports whether a policy path glob covers `path`. */
export function policyCoversPath(policy: PolicyBody, path: string): boolean {
  return policy.paths.some((glob) => matchPathGlob(glob, path));
}

/** Reports whether a device id is one of the policy's approvers. */
export function isPolicyApprover(policy: PolicyBody, device: string): boolean {
  return policy.approvers.includes(device);
}

function ruleMatches(rule: RequesterRule, requester: Requester): boolean {
  if (rule.users !== undefined && !rule.users.includes(requester.user)) return false;
  if (rule.uids !== undefined && !rule.uids.includes(requester.uid)) return false;
  if (rule.exes !== undefined && !rule.exes.includes(requester.exe)) return false;
  return true;
}

/**
 * Reports whether the policy lets this consumer host and requesting process
 * ask for this path: the consumer is listed, the path matches a glob and at
 * least one requester rule matches. An empty `requesters` list matches no
 * process (fail closed); the rule {} matches every process.
 */
export function policyAllows(policy: PolicyBody, query: { consumer: string; requester: Requester; path: string }): boolean {
  if (!policy.consumers.includes(query.consumer)) return false;
  try {
    checkSecretPath(query.path);
  } catch {
    return false;
  }
  if (!policyCoversPath(policy, query.path)) return false;
  return policy.requesters.some((rule) => ruleMatches(rule, query.requester));
}

/** Throws ProtocolError('not_allowed') unless policyAllows returns true. */
export function checkPolicyAllows(policy: PolicyBody, query: { consumer: string; requester: Requester; path: string }): void {
  if (!policyAllows(policy, query)) {
    throw new ProtocolError('not_allowed', `policy ${policy.name} v${policy.version} does not allow consumer ${query.consumer} (uid ${query.requester.uid}) to request ${query.path}`);
  }
}
