import { ProtocolError } from './errors.js';
import { asBufferSource, assertBytes, utf8Decode, utf8Encode, wipe } from './encoding.js';

/**
 * AES-256-GCM through WebCrypto, and the opaque holders for what it protects.
 *
 * Each DataKey (DEK) encrypts exactly one message, so a random 96-bit nonce
 * cannot repeat under the same key: the GCM nonce-reuse bound (about 2^32
 * messages per key for random nonces) never comes into play. DataKey enforces
 * the single use.
 *
 * Wiping is best effort: WebCrypto keeps its own copy of an imported key, and
 * the engine may have copied buffers, so wiped bytes may survive in memory.
 */

export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

abstract class OpaqueBytes {
  // A private field, so Object.keys, structuredClone and test diffs never see the bytes.
  readonly #bytes: Uint8Array;
  #wiped = false;

  protected constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** Returns the held bytes themselves (not a copy), for subclasses. */
  protected get bytes(): Uint8Array {
    return this.#bytes;
  }

  get length(): number {
    return this.bytes.length;
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  /** Zeroes the bytes and makes the holder unusable (best effort, see the file comment). */
  wipe(): void {
    wipe(this.#bytes);
    this.#wiped = true;
  }

  protected assertUsable(): void {
    if (this.#wiped) throw new ProtocolError('invalid_key', `${this.constructor.name} was wiped`);
  }

  toString(): string {
    return `[${this.constructor.name}]`;
  }

  toJSON(): never {
    throw new TypeError(`${this.constructor.name} cannot be serialized`);
  }

  [Symbol.toPrimitive](): string {
    return this.toString();
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/** Plaintext secret bytes. */
export class SecretBytes extends OpaqueBytes {
  private constructor(bytes: Uint8Array) {
    super(bytes);
  }

  /** Takes a copy of `bytes`; the caller should wipe its own buffer. */
  static from(bytes: Uint8Array): SecretBytes {
    assertBytes(bytes, undefined, 'secret bytes');
    return new SecretBytes(Uint8Array.from(bytes));
  }

  /** Takes ownership of `bytes` without copying; wipe() zeroes the caller's buffer too. */
  static adopt(bytes: Uint8Array): SecretBytes {
    assertBytes(bytes, undefined, 'secret bytes');
    return new SecretBytes(bytes);
  }

  /** Encodes a string as UTF-8. The string itself cannot be wiped; prefer bytes. */
  static fromString(text: string): SecretBytes {
    return new SecretBytes(utf8Encode(text));
  }

  /** Returns the plaintext bytes themselves (no copy), valid until wipe(). */
  expose(): Uint8Array {
    this.assertUsable();
    return this.bytes;
  }

  /** Decodes the plaintext as UTF-8 into a string that cannot be wiped. */
  exposeString(): string {
    this.assertUsable();
    return utf8Decode(this.bytes);
  }
}

/** A 256-bit data encryption key (DEK), or a 32-byte share of one. Encrypts at most once. */
export class DataKey extends OpaqueBytes {
  #usedForEncryption = false;

  private constructor(bytes: Uint8Array) {
    super(bytes);
  }

  static generate(): DataKey {
    return new DataKey(globalThis.crypto.getRandomValues(new Uint8Array(AEAD_KEY_BYTES)));
  }

  /** Takes a copy of `bytes`; the caller should wipe its own buffer. */
  static fromBytes(bytes: Uint8Array): DataKey {
    assertBytes(bytes, AEAD_KEY_BYTES, 'data key');
    return new DataKey(Uint8Array.from(bytes));
  }

  /** Returns a copy of the key bytes. The caller must wipe it. */
  exportBytes(): Uint8Array {
    this.assertUsable();
    return Uint8Array.from(this.bytes);
  }

  /** Marks the key as spent for encryption; throws if it already encrypted a message. */
  claimForEncryption(): void {
    this.assertUsable();
    if (this.#usedForEncryption) {
      throw new ProtocolError('invalid_key', 'a data key encrypts exactly one message; generate a new one');
    }
    this.#usedForEncryption = true;
  }

  async importForAesGcm(usage: 'encrypt' | 'decrypt'): Promise<CryptoKey> {
    this.assertUsable();
    return globalThis.crypto.subtle.importKey('raw', asBufferSource(this.bytes), { name: 'AES-GCM' }, false, [usage]);
  }
}

export interface AeadCiphertext {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** Encrypts with AES-256-GCM under a fresh random nonce. The key is spent afterwards. */
export async function aeadEncrypt(key: DataKey, plaintext: SecretBytes, aad: Uint8Array): Promise<AeadCiphertext> {
  assertBytes(aad, undefined, 'aad');
  key.claimForEncryption();
  const cryptoKey = await key.importForAesGcm('encrypt');
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(AEAD_NONCE_BYTES));
  const ciphertext = await globalThis.crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: asBufferSource(aad), tagLength: AEAD_TAG_BYTES * 8 },
    cryptoKey,
    asBufferSource(plaintext.expose()),
  );
  return { nonce, ciphertext: new Uint8Array(ciphertext) };
}

/** Decrypts AES-256-GCM. Any tag, key, nonce or aad mismatch throws ProtocolError('decrypt_failed'). */
export async function aeadDecrypt(key: DataKey, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Promise<SecretBytes> {
  assertBytes(nonce, AEAD_NONCE_BYTES, 'nonce');
  assertBytes(ciphertext, undefined, 'ciphertext');
  assertBytes(aad, undefined, 'aad');
  if (ciphertext.length < AEAD_TAG_BYTES) {
    throw new ProtocolError('decrypt_failed', `ciphertext is shorter than the ${AEAD_TAG_BYTES}-byte tag`);
  }
  const cryptoKey = await key.importForAesGcm('decrypt');
  try {
    const plaintext = await globalThis.crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: asBufferSource(nonce), additionalData: asBufferSource(aad), tagLength: AEAD_TAG_BYTES * 8 },
      cryptoKey,
      asBufferSource(ciphertext),
    );
    return SecretBytes.adopt(new Uint8Array(plaintext));
  } catch (cause) {
    throw new ProtocolError('decrypt_failed', 'AES-GCM authentication failed (wrong key, nonce, aad or tampered ciphertext)', { cause });
  }
}
