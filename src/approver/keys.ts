import { KeyFileError, readKeyFile, writeKeyFile } from '../local/keyfile.js';
import { SealingPrivateKey, SigningPrivateKey, concatBytes } from '../protocol/index.js';
import { ApproverError } from './errors.js';

/**
 * A terminal approver's two private keys, kept in approver/device.key under
 * a passphrase as signing seed || sealing seed (64 bytes, label
 * "device-keys"). They are unlocked for one use and wiped right after.
 */

export const DEVICE_KEYS_LABEL = 'device-keys';
const SEED_BYTES = 32;

export interface DeviceKeys {
  signing: SigningPrivateKey;
  sealing: SealingPrivateKey;
  wipe(): void;
}

function bundle(signing: SigningPrivateKey, sealing: SealingPrivateKey): DeviceKeys {
  return { signing, sealing, wipe: () => { signing.wipe(); sealing.wipe(); } };
}

/** Generates a device's signing and sealing keys and stores them encrypted under `passphrase`. */
export async function createDeviceKeys(file: string, passphrase: string): Promise<DeviceKeys> {
  const signing = await SigningPrivateKey.generate('device-signing');
  const sealing = await SealingPrivateKey.generate('device-sealing');
  const signingSeed = signing.exportSeed();
  const sealingSeed = sealing.exportSeed();
  const seeds = concatBytes(signingSeed, sealingSeed);
  try {
    await writeKeyFile(file, DEVICE_KEYS_LABEL, seeds, passphrase);
    return bundle(signing, sealing);
  } catch (error) {
    signing.wipe();
    sealing.wipe();
    throw error;
  } finally {
    signingSeed.fill(0);
    sealingSeed.fill(0);
    seeds.fill(0);
  }
}

/** Decrypts the device keys. The caller must call wipe() on the result. */
export async function unlockDeviceKeys(file: string, passphrase: string): Promise<DeviceKeys> {
  let seeds: Uint8Array;
  try {
    seeds = await readKeyFile(file, DEVICE_KEYS_LABEL, passphrase);
  } catch (error) {
    if (error instanceof KeyFileError) throw new ApproverError(error.code, error.message, { cause: error });
    throw error;
  }
  try {
    if (seeds.length !== 2 * SEED_BYTES) throw new ApproverError('invalid_key_file', `${file} contains ${seeds.length} bytes, expected ${2 * SEED_BYTES}`);
    const signing = await SigningPrivateKey.fromSeed('device-signing', seeds.subarray(0, SEED_BYTES));
    try {
      return bundle(signing, await SealingPrivateKey.fromSeed('device-sealing', seeds.subarray(SEED_BYTES)));
    } catch (error) {
      signing.wipe();
      throw error;
    }
  } finally {
    seeds.fill(0);
  }
}
