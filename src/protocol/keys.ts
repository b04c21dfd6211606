import { ed25519 } from '@noble/curves/ed25519.js';
import { HASH_CONTEXT } from './contexts.js';
import { ProtocolError } from './errors.js';
import { asBufferSource, assertBytes, concatBytes, constantTimeEqual, fromBase64UrlExact, toBase64Url, toHex, utf8Encode, wipe } from './encoding.js';
import { sha256 } from './hash.js';

/**
 * Key pairs of the protocol. Private keys are opaque: they have no string,
 * JSON or inspect form that shows their bytes, their raw seed is reachable
 * only through `exportSeed()`, and `wipe()` zeroes the seed. Wiping is best
 * effort: WebCrypto keeps its own copy inside the CryptoKey, and the engine
 * may have copied buffers, so a wiped key may still exist in process memory.
 */

export type SigningRole = 'org-identity' | 'device-signing' | 'consumer-host' | 'broker';
export type SealingRole = 'device-sealing' | 'request-ephemeral';

const KEY_LENGTH = 32;
const SIGNATURE_LENGTH = 64;
// DER prefixes of PKCS #8 structures for a bare 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const X25519_PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

function subtle(): SubtleCrypto {
  return globalThis.crypto.subtle;
}

/** Returns the key fingerprint: base64url(SHA-256(context || 0x00 || raw public key)). */
export function fingerprintOf(publicKey: Uint8Array): string {
  return toBase64Url(sha256(concatBytes(utf8Encode(HASH_CONTEXT.keyFingerprint), new Uint8Array([0]), publicKey)));
}

/** Formats a fingerprint for people comparing it by eye: 8 groups of 4 hex digits. */
export function displayFingerprint(fingerprint: string): string {
  const hex = toHex(fromBase64UrlExact(fingerprint, 32, 'fingerprint')).slice(0, 32).toUpperCase();
  return hex.match(/.{4}/g)?.join('-') ?? hex;
}

abstract class PublicKeyBase {
  readonly #bytes: Uint8Array;

  protected constructor(bytes: Uint8Array, name: string) {
    assertBytes(bytes, KEY_LENGTH, name);
    this.#bytes = Uint8Array.from(bytes);
  }

  /** Returns a copy of the raw 32-byte public key. */
  toBytes(): Uint8Array {
    return Uint8Array.from(this.#bytes);
  }

  toBase64Url(): string {
    return toBase64Url(this.#bytes);
  }

  fingerprint(): string {
    return fingerprintOf(this.#bytes);
  }

  equals(other: PublicKeyBase): boolean {
    return constantTimeEqual(this.#bytes, other.#bytes);
  }

  toJSON(): string {
    return this.toBase64Url();
  }
}

/** An Ed25519 public key. */
export class SigningPublicKey extends PublicKeyBase {
  #cryptoKey: Promise<CryptoKey> | undefined;

  constructor(bytes: Uint8Array) {
    super(bytes, 'Ed25519 public key');
  }

  static fromBase64Url(text: string, name = 'Ed25519 public key'): SigningPublicKey {
    return new SigningPublicKey(fromBase64UrlExact(text, KEY_LENGTH, name));
  }

  /**
   * Checks an Ed25519 signature. Returns false for a wrong signature and
   * throws ProtocolError('invalid_key') when the key bytes are not a point in
   * the prime-order subgroup.
   */
  async verify(message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (signature.length !== SIGNATURE_LENGTH) return false;
    const key = await this.#importKey();
    return subtle().verify({ name: 'Ed25519' }, key, asBufferSource(signature), asBufferSource(message));
  }

  #importKey(): Promise<CryptoKey> {
    if (this.#cryptoKey === undefined) checkPrimeOrderPoint(this.toBytes());
    this.#cryptoKey ??= subtle()
      .importKey('raw', asBufferSource(this.toBytes()), { name: 'Ed25519' }, false, ['verify'])
      .catch((cause: unknown) => {
        throw new ProtocolError('invalid_key', 'Ed25519 public key is not a valid curve point', { cause });
      });
    return this.#cryptoKey;
  }
}

/**
 * Rejects an Ed25519 public key that is not a canonical point encoding or
 * not in the prime-order subgroup. WebCrypto in Node 20 (OpenSSL) verifies
 * without this check, and under a small-order key a signature with
 * R = identity and S = 0 verifies for every message, so anyone could sign as
 * a certified device or consumer host whose certificate names such a key.
 * Honestly generated keys always pass.
 */
function checkPrimeOrderPoint(bytes: Uint8Array): void {
  let point: ReturnType<typeof ed25519.Point.fromBytes>;
  try {
    point = ed25519.Point.fromBytes(bytes);
  } catch (cause) {
    throw new ProtocolError('invalid_key', 'Ed25519 public key is not a valid curve point', { cause });
  }
  if (point.isSmallOrder() || !point.isTorsionFree()) {
    throw new ProtocolError('invalid_key', 'Ed25519 public key is not in the prime-order subgroup');
  }
}

/** An X25519 public key (a device sealing key or a request's ephemeral key). */
export class SealingPublicKey extends PublicKeyBase {
  constructor(bytes: Uint8Array) {
    super(bytes, 'X25519 public key');
  }

  static fromBase64Url(text: string, name = 'X25519 public key'): SealingPublicKey {
    return new SealingPublicKey(fromBase64UrlExact(text, KEY_LENGTH, name));
  }
}

abstract class PrivateKeyBase<Role extends string> {
  readonly role: Role;
  // A private field, so Object.keys, structuredClone and test diffs never see the seed.
  readonly #seed: Uint8Array;
  #wiped = false;

  protected constructor(role: Role, seed: Uint8Array) {
    assertBytes(seed, KEY_LENGTH, 'private key seed');
    this.role = role;
    this.#seed = Uint8Array.from(seed);
  }

  /** Returns a copy of the 32-byte private seed. The caller must wipe it. */
  exportSeed(): Uint8Array {
    this.assertUsable();
    return Uint8Array.from(this.#seed);
  }

  /** Returns the seed itself (not a copy) for subclasses that import it into WebCrypto. */
  protected seedBytes(): Uint8Array {
    return this.#seed;
  }

  /** Zeroes the seed and makes the key unusable (best effort, see the file comment). */
  wipe(): void {
    wipe(this.#seed);
    this.#wiped = true;
    this.forgetCryptoKey();
  }

  get wiped(): boolean {
    return this.#wiped;
  }

  protected assertUsable(): void {
    if (this.#wiped) throw new ProtocolError('invalid_key', `${this.role} private key was wiped`);
  }

  protected abstract forgetCryptoKey(): void;

  toString(): string {
    return `[${this.constructor.name} ${this.role}]`;
  }

  toJSON(): never {
    throw new TypeError(`${this.constructor.name} cannot be serialized`);
  }

  [INSPECT](): string {
    return this.toString();
  }
}

/** An Ed25519 private key with its role (Org Identity, device, consumer host, broker). */
export class SigningPrivateKey extends PrivateKeyBase<SigningRole> {
  readonly publicKey: SigningPublicKey;
  #cryptoKey: Promise<CryptoKey> | undefined;

  private constructor(role: SigningRole, seed: Uint8Array, publicKey: SigningPublicKey) {
    super(role, seed);
    this.publicKey = publicKey;
  }

  static async generate(role: SigningRole): Promise<SigningPrivateKey> {
    return SigningPrivateKey.fromSeed(role, globalThis.crypto.getRandomValues(new Uint8Array(KEY_LENGTH)));
  }

  /** Rebuilds a key from its 32-byte seed (RFC 8032 private key). The seed is copied. */
  static async fromSeed(role: SigningRole, seed: Uint8Array): Promise<SigningPrivateKey> {
    assertBytes(seed, KEY_LENGTH, 'Ed25519 seed');
    const pkcs8 = concatBytes(ED25519_PKCS8_PREFIX, seed);
    try {
      const extractable = await subtle().importKey('pkcs8', asBufferSource(pkcs8), { name: 'Ed25519' }, true, ['sign']);
      const jwk = await subtle().exportKey('jwk', extractable);
      const publicKey = SigningPublicKey.fromBase64Url(jwk.x ?? '', 'derived Ed25519 public key');
      return new SigningPrivateKey(role, seed, publicKey);
    } finally {
      wipe(pkcs8);
    }
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    this.assertUsable();
    const key = await this.#importKey();
    return new Uint8Array(await subtle().sign({ name: 'Ed25519' }, key, asBufferSource(message)));
  }

  protected forgetCryptoKey(): void {
    this.#cryptoKey = undefined;
  }

  #importKey(): Promise<CryptoKey> {
    if (this.#cryptoKey === undefined) {
      const pkcs8 = concatBytes(ED25519_PKCS8_PREFIX, this.seedBytes());
      this.#cryptoKey = subtle()
        .importKey('pkcs8', asBufferSource(pkcs8), { name: 'Ed25519' }, false, ['sign'])
        .finally(() => { wipe(pkcs8); });
    }
    return this.#cryptoKey;
  }
}

/** An X25519 private key (a device sealing key or a request's ephemeral key). */
export class SealingPrivateKey extends PrivateKeyBase<SealingRole> {
  readonly publicKey: SealingPublicKey;

  private constructor(role: SealingRole, seed: Uint8Array, publicKey: SealingPublicKey) {
    super(role, seed);
    this.publicKey = publicKey;
  }

  static async generate(role: SealingRole): Promise<SealingPrivateKey> {
    return SealingPrivateKey.fromSeed(role, globalThis.crypto.getRandomValues(new Uint8Array(KEY_LENGTH)));
  }

  /** Rebuilds a key from its 32-byte scalar (RFC 7748). The scalar is copied. */
  static async fromSeed(role: SealingRole, seed: Uint8Array): Promise<SealingPrivateKey> {
    assertBytes(seed, KEY_LENGTH, 'X25519 private key');
    const pkcs8 = concatBytes(X25519_PKCS8_PREFIX, seed);
    try {
      const extractable = await subtle().importKey('pkcs8', asBufferSource(pkcs8), { name: 'X25519' }, true, ['deriveBits']);
      const jwk = await subtle().exportKey('jwk', extractable);
      const publicKey = SealingPublicKey.fromBase64Url(jwk.x ?? '', 'derived X25519 public key');
      return new SealingPrivateKey(role, seed, publicKey);
    } finally {
      wipe(pkcs8);
    }
  }

  /** Returns the raw scalar for the HPKE library, which imports it itself. The caller must wipe it. */
  exportScalarForHpke(): Uint8Array {
    return this.exportSeed();
  }

  protected forgetCryptoKey(): void {
    // The HPKE layer imports the scalar per operation and keeps no CryptoKey here.
  }
}
