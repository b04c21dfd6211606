import { aeadDecrypt, aeadEncrypt, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, DataKey, type SecretBytes } from './aead.js';
import { PROTOCOL_VERSION, SECRET_AAD_CONTEXT } from './contexts.js';
import { ProtocolError } from './errors.js';
import { fromBase64Url, toBase64Url } from './encoding.js';
import { sealGrant } from './hpke.js';
import { SealingPublicKey, type SigningPrivateKey } from './keys.js';
import { MAX_NAME_LENGTH } from './org.js';
import { checkSecretPath } from './paths.js';
import { isPolicyApprover, MAX_POLICY_ITEMS, policyCoversPath, policyHash } from './policy.js';
import { expectArray, expectBase64Url, expectBoolean, expectFingerprint, expectId, expectInteger, expectMembers, expectOneOf, expectString } from './shape.js';
import { signedMessage, signObject, type Signed } from './signed.js';
import { checkMinVersion, checkTrust, markVerified, verifyEnvelope, type OrgTrust, type Verified } from './trust.js';
import type { DeviceCertBody, Grant, PolicyBody, PolicyRef, SecretBody } from './types.js';

/** Largest plaintext a secret version may hold: 64 KiB. */
export const MAX_SECRET_BYTES = 64 * 1024;
const WRAPPED_KEY_BYTES = 48;
const MAX_SHARES = 255;

function parseGrant(value: unknown, name: string): Grant {
  const grant = expectMembers(value, name, ['device', 'scheme', 'enc', 'ct'], ['threshold', 'share']);
  const scheme = expectOneOf(grant.scheme, `${name}.scheme`, ['whole', 'shamir'] as const);
  const parsed: Grant = { device: expectId(grant.device, `${name}.device`), scheme, enc: '', ct: '' };
  if (scheme === 'shamir') {
    parsed.threshold = expectInteger(grant.threshold, `${name}.threshold`, 2, MAX_SHARES);
    parsed.share = expectInteger(grant.share, `${name}.share`, 1, MAX_SHARES);
  } else if (grant.threshold !== undefined || grant.share !== undefined) {
    throw new ProtocolError('invalid_object', `${name}: a whole-key grant has no threshold or share`);
  }
  parsed.enc = expectBase64Url(grant.enc, `${name}.enc`, 32);
  parsed.ct = expectBase64Url(grant.ct, `${name}.ct`, WRAPPED_KEY_BYTES);
  return parsed;
}

function parsePolicyRef(value: unknown): PolicyRef {
  const ref = expectMembers(value, 'secret.policy', ['name', 'version', 'hash']);
  return {
    name: expectString(ref.name, 'secret.policy.name', MAX_NAME_LENGTH),
    version: expectInteger(ref.version, 'secret.policy.version', 1),
    hash: expectBase64Url(ref.hash, 'secret.policy.hash', 32),
  };
}

/**
 * Checks the exact shape of a secret version body. A live version has a
 * 12-byte nonce, a ciphertext of at most MAX_SECRET_BYTES plus the tag and at
 * least one grant; a deleted version (tombstone) has empty nonce and
 * ciphertext and no grants.
 */
export function parseSecretBody(value: unknown): SecretBody {
  const body = expectMembers(value, 'secret', ['v', 'kind', 'org', 'path', 'version', 'policy', 'aead', 'nonce', 'grants', 'created', 'deleted', 'ciphertext']);
  const deleted = expectBoolean(body.deleted, 'secret.deleted');
  const secret: SecretBody = {
    v: PROTOCOL_VERSION,
    kind: 'secret',
    org: expectFingerprint(body.org, 'secret.org'),
    path: checkSecretPath(body.path, 'secret.path'),
    version: expectInteger(body.version, 'secret.version', 1),
    policy: parsePolicyRef(body.policy),
    aead: expectOneOf(body.aead, 'secret.aead', ['A256GCM'] as const),
    nonce: deleted ? expectString(body.nonce, 'secret.nonce', 0, 0) : expectBase64Url(body.nonce, 'secret.nonce', AEAD_NONCE_BYTES),
    grants: expectArray(body.grants, 'secret.grants', deleted ? 0 : 1, deleted ? 0 : MAX_POLICY_ITEMS, parseGrant),
    created: expectInteger(body.created, 'secret.created'),
    deleted,
    ciphertext: deleted
      ? expectString(body.ciphertext, 'secret.ciphertext', 0, 0)
      : expectBase64Url(body.ciphertext, 'secret.ciphertext', undefined, MAX_SECRET_BYTES + AEAD_TAG_BYTES),
  };
  if (!deleted && fromBase64Url(secret.ciphertext).length < AEAD_TAG_BYTES) {
    throw new ProtocolError('invalid_object', 'secret.ciphertext is shorter than the AES-GCM tag');
  }
  if (new Set(secret.grants.map((grant) => grant.device)).size !== secret.grants.length) {
    throw new ProtocolError('invalid_object', 'secret.grants has two grants for one device');
  }
  return secret;
}

/**
 * Returns the AES-GCM aad of a secret version:
 * UTF-8('stillvault/v1/secret-aad') || 0x00 || JCS({v, kind, org, path,
 * version, policy, aead, created, deleted}). Grants, nonce and ciphertext
 * are left out: the nonce is a GCM input already, and the signature covers
 * all members.
 */
export function secretAad(body: SecretBody): Uint8Array {
  const { v, kind, org, path, version, policy, aead, created, deleted } = body;
  return signedMessage(SECRET_AAD_CONTEXT, { v, kind, org, path, version, policy, aead, created, deleted });
}

export interface SecretVersionInput {
  policy: Verified<PolicyBody>;
  /** Approver devices to grant to; each must be a policy approver. */
  devices: readonly Verified<DeviceCertBody>[];
  path: string;
  version: number;
  created: number;
  plaintext: SecretBytes;
}

/**
 * Builds and signs a secret version (admin side): a fresh 256-bit DEK
 * encrypts the plaintext once, and the DEK is sealed with HPKE to every
 * listed device's sealing key. The DEK is wiped before returning.
 */
export async function buildSecretVersion(identityKey: SigningPrivateKey, input: SecretVersionInput): Promise<Signed<SecretBody>> {
  const { policy } = input;
  checkSecretVersionInput(identityKey, input);
  if (input.plaintext.length > MAX_SECRET_BYTES) {
    throw new RangeError(`secret plaintext must be at most ${MAX_SECRET_BYTES} bytes, got ${input.plaintext.length}`);
  }
  if (policy.body.quorum > 1) {
    // NOTE: M-of-N needs Shamir splitting of the DEK; the format carries threshold and share already.
    throw new ProtocolError('not_implemented', `quorum ${policy.body.quorum} policies are not supported yet`);
  }

  const dek = DataKey.generate();
  try {
    const grants: Grant[] = [];
    for (const device of input.devices) {
      const sealingKey = SealingPublicKey.fromBase64Url(device.body.sealingKey, 'device-cert.sealingKey');
      grants.push(await sealGrant({ org: policy.body.org, path: input.path, version: input.version, device: device.body.device, sealingKey }, dek));
    }
    const header = headerFor(identityKey, input, grants);
    const { nonce, ciphertext } = await aeadEncrypt(dek, input.plaintext, secretAad({ ...header, nonce: '', ciphertext: '' }));
    const body = parseSecretBody({ ...header, nonce: toBase64Url(nonce), ciphertext: toBase64Url(ciphertext) });
    return await signObject(body, identityKey);
  } finally {
    dek.wipe();
  }
}

/** Builds and signs a tombstone: a version that marks the path deleted and carries no ciphertext. */
export async function buildSecretTombstone(identityKey: SigningPrivateKey, input: Omit<SecretVersionInput, 'devices' | 'plaintext'>): Promise<Signed<SecretBody>> {
  checkSecretVersionInput(identityKey, { ...input, devices: [] });
  const body = parseSecretBody({ ...headerFor(identityKey, { ...input, devices: [] }, []), deleted: true, nonce: '', ciphertext: '' });
  return signObject(body, identityKey);
}

function checkSecretVersionInput(identityKey: SigningPrivateKey, input: Omit<SecretVersionInput, 'plaintext'>): void {
  const { policy } = input;
  if (policy.body.org !== identityKey.publicKey.fingerprint()) {
    throw new ProtocolError('wrong_org', `policy belongs to org ${policy.body.org}, not to this identity key`);
  }
  checkSecretPath(input.path);
  if (!policyCoversPath(policy.body, input.path)) {
    throw new ProtocolError('policy_mismatch', `policy ${policy.body.name} does not cover ${input.path}`);
  }
  for (const device of input.devices) {
    if (device.body.org !== policy.body.org) {
      throw new ProtocolError('wrong_org', `device certificate belongs to org ${device.body.org}, not to the policy's org`);
    }
    if (!isPolicyApprover(policy.body, device.body.device)) {
      throw new ProtocolError('not_approver', `device ${device.body.device} is not an approver of policy ${policy.body.name}`);
    }
  }
}

function headerFor(identityKey: SigningPrivateKey, input: Omit<SecretVersionInput, 'plaintext'>, grants: Grant[]): Omit<SecretBody, 'nonce' | 'ciphertext'> {
  const { policy } = input;
  return {
    v: PROTOCOL_VERSION,
    kind: 'secret',
    org: identityKey.publicKey.fingerprint(),
    path: input.path,
    version: input.version,
    policy: { name: policy.body.name, version: policy.body.version, hash: policyHash(policy) },
    aead: 'A256GCM',
    grants,
    created: input.created,
    deleted: false,
  };
}

/**
 * Verifies a secret version against a verified policy of the trusted org,
 * in order: header, shape, Org Identity signature; rollback against `minVersion` (the highest
 * version seen for this path); the policy reference (name, version and hash
 * must match `policy` exactly); the path is covered by the policy's globs;
 * every grant goes to a policy approver, and the grant scheme fits the quorum.
 */
export async function verifySecret(
  value: unknown,
  trust: OrgTrust,
  policy: Verified<PolicyBody>,
  options: { minVersion: number },
): Promise<Verified<SecretBody>> {
  checkTrust(trust);
  checkMinVersion(options.minVersion);
  if (policy.body.org !== trust.org) {
    throw new ProtocolError('wrong_org', `policy belongs to org ${policy.body.org}, expected ${trust.org}`);
  }
  const signed = await verifyEnvelope(value, 'secret', trust.org, trust.identityKey, parseSecretBody);
  const body = signed.body;
  if (body.version < options.minVersion) {
    throw new ProtocolError('secret_rollback', `secret ${body.path} version ${body.version} is older than version ${options.minVersion} already seen`);
  }

  const expectedHash = policyHash(policy);
  if (body.policy.name !== policy.body.name || body.policy.version !== policy.body.version || body.policy.hash !== expectedHash) {
    throw new ProtocolError(
      'policy_mismatch',
      `secret pins policy ${body.policy.name} v${body.policy.version} (${body.policy.hash}), expected ${policy.body.name} v${policy.body.version} (${expectedHash})`,
    );
  }
  if (!policyCoversPath(policy.body, body.path)) {
    throw new ProtocolError('policy_mismatch', `policy ${policy.body.name} does not cover ${body.path}`);
  }

  for (const grant of body.grants) {
    if (!isPolicyApprover(policy.body, grant.device)) {
      throw new ProtocolError('not_approver', `secret grants to device ${grant.device}, which is not an approver of policy ${policy.body.name}`);
    }
    const expectedScheme = policy.body.quorum === 1 ? 'whole' : 'shamir';
    if (grant.scheme !== expectedScheme || (grant.scheme === 'shamir' && grant.threshold !== policy.body.quorum)) {
      throw new ProtocolError('policy_mismatch', `grant to ${grant.device} does not fit quorum ${policy.body.quorum}`);
    }
  }
  return markVerified(signed);
}

/** Decrypts a verified secret version with its DEK. Throws 'secret_deleted' for a tombstone, 'decrypt_failed' on any AEAD failure. */
export async function decryptSecret(secret: Verified<SecretBody>, dek: DataKey): Promise<SecretBytes> {
  if (secret.body.deleted) {
    throw new ProtocolError('secret_deleted', `secret ${secret.body.path} version ${secret.body.version} is deleted`);
  }
  const nonce = fromBase64Url(secret.body.nonce, 'secret.nonce');
  const ciphertext = fromBase64Url(secret.body.ciphertext, 'secret.ciphertext');
  return aeadDecrypt(dek, nonce, ciphertext, secretAad(secret.body));
}
