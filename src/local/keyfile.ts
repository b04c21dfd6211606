import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { fromBase64Url, toBase64Url } from '../protocol/encoding.js';
import { writeJsonFile } from './files.js';

/**
 * Private key seeds encrypted at rest under a passphrase: scrypt derives a
 * 256-bit key from the passphrase, and AES-256-GCM seals the seeds with the
 * file's label as associated data, so a key file cannot be swapped for
 * another kind of key file with the same passphrase.
 */

export type KeyFileErrorCode = 'wrong_passphrase' | 'invalid_key_file' | 'key_file_missing' | 'key_file_unsafe';

export class KeyFileError extends Error {
  readonly code: KeyFileErrorCode;

  constructor(code: KeyFileErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeyFileError';
    this.code = code;
  }
}

/** scrypt cost: N = 2^17, r = 8, p = 1 uses 128 MiB and about 0.3 s on one core (OWASP's minimum is 2^17). */
export const SCRYPT_PARAMETERS = { N: 2 ** 17, r: 8, p: 1 } as const;
const SCRYPT_MAX_MEMORY = 256 * 1024 * 1024;

interface KeyFileContents {
  v: 1;
  kind: 'stillvault-key-file';
  label: string;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  aead: 'A256GCM';
  nonce: string;
  ciphertext: string;
}

function deriveKey(passphrase: string, salt: Uint8Array, parameters: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(passphrase.normalize('NFC'), salt, 32, { ...parameters, maxmem: SCRYPT_MAX_MEMORY }, (error, key) => {
      if (error) reject(error);
      else resolve(key);
    });
  });
}

/** Encrypts `seeds` under `passphrase` and writes them to `file` with mode 0600. */
export async function writeKeyFile(file: string, label: string, seeds: Uint8Array, passphrase: string): Promise<void> {
  if (passphrase.length === 0) throw new KeyFileError('wrong_passphrase', 'the passphrase must not be empty');
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const key = await deriveKey(passphrase, salt, SCRYPT_PARAMETERS);
  try {
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.from(label, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(seeds), cipher.final(), cipher.getAuthTag()]);
    const contents: KeyFileContents = {
      v: 1,
      kind: 'stillvault-key-file',
      label,
      kdf: { name: 'scrypt', ...SCRYPT_PARAMETERS, salt: toBase64Url(salt) },
      aead: 'A256GCM',
      nonce: toBase64Url(nonce),
      ciphertext: toBase64Url(ciphertext),
    };
    await writeJsonFile(file, contents);
  } finally {
    key.fill(0);
  }
}

/**
 * Reads `file` and decrypts its seeds. The caller must wipe the returned
 * buffer. Throws KeyFileError('wrong_passphrase') when authentication fails.
 */
export async function readKeyFile(file: string, label: string, passphrase: string): Promise<Uint8Array> {
  const contents = parseKeyFile(await readRaw(file), file, label);
  const key = await deriveKey(passphrase, fromBase64Url(contents.kdf.salt), contents.kdf);
  const sealed = fromBase64Url(contents.ciphertext, 'ciphertext');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, fromBase64Url(contents.nonce, 'nonce'));
    decipher.setAAD(Buffer.from(label, 'utf8'));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    return new Uint8Array(Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]));
  } catch (cause) {
    throw new KeyFileError('wrong_passphrase', `cannot unlock ${file}: wrong passphrase or damaged file`, { cause });
  } finally {
    key.fill(0);
  }
}

/**
 * Reads the key file, rejecting one that another user owns or that group or
 * others may read or write: its ciphertext is open to offline guessing of the
 * passphrase, and a replaced file could hold keys someone else chose.
 */
async function readRaw(file: string): Promise<string> {
  let handle;
  try {
    handle = await fs.open(file, 'r');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new KeyFileError('key_file_missing', `key file ${file} does not exist`, { cause });
    }
    throw cause;
  }
  try {
    checkKeyFilePermissions(file, await handle.stat());
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

function checkKeyFilePermissions(file: string, stat: { uid: number; mode: number }): void {
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) {
    throw new KeyFileError('key_file_unsafe', `key file ${file} is owned by uid ${stat.uid}, not by this user (uid ${uid})`);
  }
  if ((stat.mode & 0o077) !== 0) {
    throw new KeyFileError('key_file_unsafe', `key file ${file} has mode ${(stat.mode & 0o777).toString(8)}, so other users can reach it; run \`chmod 600 ${file}\``);
  }
}

function parseKeyFile(text: string, file: string, label: string): KeyFileContents {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new KeyFileError('invalid_key_file', `${file} is not valid JSON`, { cause });
  }
  const contents = value as Partial<KeyFileContents> | null;
  const kdf = contents?.kdf;
  const valid =
    contents?.v === 1 &&
    contents.kind === 'stillvault-key-file' &&
    contents.aead === 'A256GCM' &&
    kdf?.name === 'scrypt' &&
    Number.isSafeInteger(kdf.N) && kdf.N >= 2 ** 14 && kdf.N <= 2 ** 20 &&
    Number.isSafeInteger(kdf.r) && kdf.r >= 1 && kdf.r <= 32 &&
    Number.isSafeInteger(kdf.p) && kdf.p >= 1 && kdf.p <= 16 &&
    typeof kdf.salt === 'string' &&
    typeof contents.nonce === 'string' &&
    typeof contents.ciphertext === 'string';
  if (!valid) throw new KeyFileError('invalid_key_file', `${file} is not a version 1 Stillvault key file`);
  if (contents.label !== label) {
    throw new KeyFileError('invalid_key_file', `${file} holds a ${String(contents.label)} key, expected ${label}`);
  }
  return contents as KeyFileContents;
}
