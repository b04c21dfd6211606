import { ProtocolError } from './errors.js';

const BASE64URL_PATTERN = /^[A-Za-z0-9_-]*$/;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes bytes as unpadded base64url (RFC 4648 section 5). */
export function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * Decodes unpadded base64url strictly: padding, other alphabets and
 * non-canonical trailing bits are rejected, so each byte string has exactly
 * one encoding and a signed object cannot be altered by re-encoding a field.
 */
export function fromBase64Url(text: string, name = 'value'): Uint8Array {
  if (typeof text !== 'string') {
    throw new ProtocolError('invalid_encoding', `${name} must be a base64url string, got ${typeof text}`);
  }
  if (!BASE64URL_PATTERN.test(text) || text.length % 4 === 1) {
    throw new ProtocolError('invalid_encoding', `${name} is not valid unpadded base64url`);
  }
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  if (toBase64Url(bytes) !== text) {
    throw new ProtocolError('invalid_encoding', `${name} is not canonical base64url (stray trailing bits)`);
  }
  return bytes;
}

/** Decodes base64url and checks the decoded length. */
export function fromBase64UrlExact(text: string, length: number, name: string): Uint8Array {
  const bytes = fromBase64Url(text, name);
  if (bytes.length !== length) {
    throw new ProtocolError('invalid_encoding', `${name} must be ${length} bytes, got ${bytes.length}`);
  }
  return bytes;
}

export function utf8Encode(text: string): Uint8Array {
  return textEncoder.encode(text);
}

/** Decodes UTF-8, rejecting malformed sequences. */
export function utf8Decode(bytes: Uint8Array): string {
  try {
    return textDecoder.decode(bytes);
  } catch (cause) {
    throw new ProtocolError('invalid_encoding', 'bytes are not valid UTF-8', { cause });
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function toHex(bytes: Uint8Array): string {
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

/**
 * Compares two byte strings in time that depends only on their lengths.
 * Use it for tags, tokens and hashes of secrets.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return difference === 0;
}

/** Checks that `value` is a Uint8Array of the given length, naming the parameter on failure. */
export function assertBytes(value: unknown, length: number | undefined, name: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a Uint8Array`);
  }
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${name} must be ${length} bytes, got ${value.length}`);
  }
}

/** Overwrites a buffer with zeros. JavaScript engines may still hold copies elsewhere. */
export function wipe(bytes: Uint8Array): void {
  bytes.fill(0);
}

/**
 * Narrows a Uint8Array for WebCrypto, whose types reject views that could sit
 * on a SharedArrayBuffer. The protocol never allocates shared buffers.
 */
export function asBufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}
