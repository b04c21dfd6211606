import { KDF_LABEL, SealingPrivateKey, SigningPrivateKey, utf8Encode, wipe } from '../../protocol/index.js';

/**
 * Derives the device's keys from the passkey's PRF output with HKDF-SHA256
 * (RFC 5869, WebCrypto): an empty salt, because the PRF output is already
 * uniformly random, and one named info label per key. The same passkey
 * always yields the same keys; nothing else can.
 */

export interface DeviceKeys {
  signing: SigningPrivateKey;
  sealing: SealingPrivateKey;
}

async function hkdf(prfOutput: Uint8Array, label: string): Promise<Uint8Array> {
  const material = Uint8Array.from(prfOutput);
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey('raw', material, 'HKDF', false, ['deriveBits']);
  } finally {
    wipe(material);
  }
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: Uint8Array.from(utf8Encode(label)) }, key, 256);
  return new Uint8Array(bits);
}

/** Derives both keys and wipes the PRF output, on success and on failure. */
export async function deriveDeviceKeys(prfOutput: Uint8Array): Promise<DeviceKeys> {
  if (prfOutput.length !== 32) throw new RangeError(`prfOutput must be 32 bytes, got ${prfOutput.length}`);
  let signingSeed: Uint8Array | undefined;
  let sealingSeed: Uint8Array | undefined;
  try {
    signingSeed = await hkdf(prfOutput, KDF_LABEL.prfSigningKey);
    sealingSeed = await hkdf(prfOutput, KDF_LABEL.prfSealingKey);
    return {
      signing: await SigningPrivateKey.fromSeed('device-signing', signingSeed),
      sealing: await SealingPrivateKey.fromSeed('device-sealing', sealingSeed),
    };
  } finally {
    wipe(prfOutput);
    if (signingSeed !== undefined) wipe(signingSeed);
    if (sealingSeed !== undefined) wipe(sealingSeed);
  }
}

/** Wipes both keys (best effort: WebCrypto and the engine may keep copies). */
export function wipeDeviceKeys(keys: DeviceKeys): void {
  keys.signing.wipe();
  keys.sealing.wipe();
}
