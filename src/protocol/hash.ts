import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { canonicalBytes } from './canonical.js';
import { concatBytes, toBase64Url, utf8Encode } from './encoding.js';

/** SHA-256 of `data` (synchronous, from @noble/hashes). */
export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}

/**
 * Hashes a JSON value under a domain-separation context:
 * SHA-256(context || 0x00 || JCS(value)), as base64url.
 */
export function hashObject(context: string, value: unknown): string {
  return toBase64Url(sha256(concatBytes(utf8Encode(context), new Uint8Array([0]), canonicalBytes(value))));
}
