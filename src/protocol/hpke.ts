import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { DataKey } from './aead.js';
import { canonicalBytes } from './canonical.js';
import { HPKE_INFO } from './contexts.js';
import { ProtocolError } from './errors.js';
import { asBufferSource, fromBase64Url, toBase64Url, utf8Encode, wipe } from './encoding.js';
import type { SealingPrivateKey, SealingPublicKey } from './keys.js';
import type { Grant, Release } from './types.js';

/**
 * HPKE (RFC 9180) wrapping of data keys: base mode, single-shot, with
 * DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM. `info` is the
 * purpose constant from HPKE_INFO and `aad` is the JCS form of a binding
 * object, so a wrapped key opens only for the exact org, path, version,
 * device (and for releases, request) it was made for.
 */

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

export const HPKE_ENC_BYTES = 32;
const KEY_BYTES = 32;
// Wrapped payload: a 32-byte key plus the 16-byte AES-GCM tag.
const WRAPPED_BYTES = KEY_BYTES + 16;

export type Scheme = 'whole' | 'shamir';

/** The share of a split key that a grant or release carries; absent for a whole key. */
export interface ShareInfo {
  threshold: number;
  share: number;
}

/** The target of a grant: org, path, version and device. */
export interface GrantTarget {
  org: string;
  path: string;
  version: number;
  device: string;
}

/** The binding of a release: the grant's path and version, re-sealed for one request. */
export interface ReleaseBinding {
  org: string;
  request: string;
  requestHash: string;
  device: string;
  path: string;
  secretVersion: number;
}

function shareMembers(scheme: Scheme, share: ShareInfo | undefined): Record<string, number> {
  if (scheme === 'whole') {
    if (share !== undefined) throw new ProtocolError('invalid_object', 'a whole-key grant carries no share');
    return {};
  }
  if (share === undefined) throw new ProtocolError('invalid_object', 'a shamir grant needs threshold and share');
  return { threshold: share.threshold, share: share.share };
}

/** Returns the aad a grant is sealed under. */
export function grantAad(target: GrantTarget, scheme: Scheme, share?: ShareInfo): Uint8Array {
  return canonicalBytes({ ...target, scheme, ...shareMembers(scheme, share) });
}

/** Returns the aad a release is sealed under. */
export function releaseAad(binding: ReleaseBinding, scheme: Scheme, share?: ShareInfo): Uint8Array {
  return canonicalBytes({ ...binding, scheme, ...shareMembers(scheme, share) });
}

async function seal(recipient: SealingPublicKey, info: string, aad: Uint8Array, key: DataKey): Promise<{ enc: string; ct: string }> {
  const plaintext = key.exportBytes();
  try {
    const recipientPublicKey = await suite.kem.importKey('raw', asBufferSource(recipient.toBytes()).buffer, true);
    const sealed = await suite.seal(
      { recipientPublicKey, info: asBufferSource(utf8Encode(info)) },
      asBufferSource(plaintext),
      asBufferSource(aad),
    );
    return { enc: toBase64Url(new Uint8Array(sealed.enc)), ct: toBase64Url(new Uint8Array(sealed.ct)) };
  } catch (cause) {
    // @hpke/core rejects a small-order recipient key, whose shared secret would be all zeros (RFC 9180 section 7.1.4).
    throw new ProtocolError('invalid_key', 'HPKE seal failed: the recipient X25519 key is not usable', { cause });
  } finally {
    wipe(plaintext);
  }
}

async function open(recipient: SealingPrivateKey, info: string, aad: Uint8Array, enc: string, ct: string): Promise<DataKey> {
  const encBytes = fromBase64Url(enc, 'enc');
  const ctBytes = fromBase64Url(ct, 'ct');
  if (encBytes.length !== HPKE_ENC_BYTES || ctBytes.length !== WRAPPED_BYTES) {
    throw new ProtocolError('decrypt_failed', `wrapped key must have a ${HPKE_ENC_BYTES}-byte enc and a ${WRAPPED_BYTES}-byte ct`);
  }
  const scalar = recipient.exportScalarForHpke();
  let plaintext: Uint8Array | undefined;
  try {
    const recipientKey = await suite.kem.importKey('raw', asBufferSource(scalar).buffer, false);
    plaintext = new Uint8Array(
      await suite.open({ recipientKey, enc: asBufferSource(encBytes), info: asBufferSource(utf8Encode(info)) }, asBufferSource(ctBytes), asBufferSource(aad)),
    );
    return DataKey.fromBytes(plaintext);
  } catch (cause) {
    if (cause instanceof ProtocolError) throw cause;
    throw new ProtocolError('decrypt_failed', 'HPKE open failed (wrong recipient key or binding, or tampered data)', { cause });
  } finally {
    wipe(scalar);
    if (plaintext !== undefined) wipe(plaintext);
  }
}

/** Seals a DEK (or one Shamir share of it) to a device's sealing key. */
export async function sealGrant(
  target: GrantTarget & { sealingKey: SealingPublicKey },
  key: DataKey,
  share?: ShareInfo,
): Promise<Grant> {
  const scheme: Scheme = share === undefined ? 'whole' : 'shamir';
  const { sealingKey, ...bound } = target;
  const aad = grantAad({ org: bound.org, path: bound.path, version: bound.version, device: bound.device }, scheme, share);
  const sealed = await seal(sealingKey, HPKE_INFO.grant, aad, key);
  return { device: bound.device, scheme, ...shareMembers(scheme, share), ...sealed };
}

/**
 * Opens the grant for `deviceId` in a secret version. `secret` supplies the
 * org, path and version the grant must be bound to; pass the verified body.
 */
export async function openGrant(
  grant: Grant,
  secret: { org: string; path: string; version: number },
  deviceId: string,
  sealingKey: SealingPrivateKey,
): Promise<DataKey> {
  if (grant.device !== deviceId) {
    throw new ProtocolError('binding_mismatch', `grant is for device ${grant.device}, not ${deviceId}`);
  }
  const aad = grantAad({ org: secret.org, path: secret.path, version: secret.version, device: deviceId }, grant.scheme, shareOf(grant));
  return open(sealingKey, HPKE_INFO.grant, aad, grant.enc, grant.ct);
}

/** Re-seals a DEK (or share) opened from a grant to a request's ephemeral key, bound to that request. */
export async function sealRelease(
  binding: ReleaseBinding,
  key: DataKey,
  ephemeralKey: SealingPublicKey,
  share?: ShareInfo,
): Promise<Release> {
  const scheme: Scheme = share === undefined ? 'whole' : 'shamir';
  const sealed = await seal(ephemeralKey, HPKE_INFO.release, releaseAad(binding, scheme, share), key);
  return { path: binding.path, secretVersion: binding.secretVersion, scheme, ...shareMembers(scheme, share), ...sealed };
}

/**
 * Opens a release with the request's ephemeral private key. `binding` must
 * come from the verified request and approval, never from the release itself
 * (its path and version are checked against the binding).
 */
export async function openRelease(release: Release, binding: ReleaseBinding, ephemeralKey: SealingPrivateKey): Promise<DataKey> {
  if (release.path !== binding.path || release.secretVersion !== binding.secretVersion) {
    throw new ProtocolError('binding_mismatch', `release is for ${release.path} v${release.secretVersion}, expected ${binding.path} v${binding.secretVersion}`);
  }
  return open(ephemeralKey, HPKE_INFO.release, releaseAad(binding, release.scheme, shareOf(release)), release.enc, release.ct);
}

function shareOf(item: { scheme: Scheme; threshold?: number; share?: number }): ShareInfo | undefined {
  if (item.scheme === 'whole') return undefined;
  if (item.threshold === undefined || item.share === undefined) {
    throw new ProtocolError('invalid_object', 'a shamir grant or release needs threshold and share');
  }
  return { threshold: item.threshold, share: item.share };
}
