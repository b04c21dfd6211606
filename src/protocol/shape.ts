import { ProtocolError } from './errors.js';
import { fromBase64Url, toBase64Url } from './encoding.js';
import { isRecord } from './signed.js';

/**
 * Strict shape checks for wire objects. Each check throws
 * ProtocolError('invalid_object') naming the member, so a verifier reports the
 * first malformed member and never acts on a partly valid object.
 */

/** Largest integer any numeric member may hold (2^53 - 1). */
export const MAX_INTEGER = Number.MAX_SAFE_INTEGER;
export const ID_BYTES = 16;
export const FINGERPRINT_BYTES = 32;
export const PUBLIC_KEY_BYTES = 32;

function fail(message: string): never {
  throw new ProtocolError('invalid_object', message);
}

/** Checks that `value` is an object whose member set is exactly `required` plus any of `optional`. */
export function expectMembers(
  value: unknown,
  name: string,
  required: readonly string[],
  optional: readonly string[] = [],
): Record<string, unknown> {
  if (!isRecord(value)) fail(`${name} must be a JSON object`);
  for (const key of required) {
    if (!Object.hasOwn(value, key)) fail(`${name} is missing member "${key}"`);
  }
  for (const key of Object.keys(value)) {
    if (!required.includes(key) && !optional.includes(key)) fail(`${name} has unknown member "${key}"`);
  }
  return value;
}

export function expectString(value: unknown, name: string, maxLength: number, minLength = 1): string {
  if (typeof value !== 'string') fail(`${name} must be a string, got ${typeof value}`);
  if (value.length < minLength || value.length > maxLength) {
    fail(`${name} must be ${minLength} to ${maxLength} characters, got ${value.length}`);
  }
  return value;
}

export function expectInteger(value: unknown, name: string, min = 0, max = MAX_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) fail(`${name} must be a safe integer`);
  if (value < min || value > max) fail(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

export function expectBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') fail(`${name} must be a boolean`);
  return value;
}

export function expectOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    fail(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Checks strict base64url, optionally of an exact decoded length or a maximum decoded length. */
export function expectBase64Url(value: unknown, name: string, length?: number, maxLength?: number): string {
  if (typeof value !== 'string') fail(`${name} must be a base64url string`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(value, name);
  } catch (cause) {
    throw new ProtocolError('invalid_object', `${name} is not canonical unpadded base64url`, { cause });
  }
  if (length !== undefined && bytes.length !== length) fail(`${name} must encode ${length} bytes, got ${bytes.length}`);
  if (maxLength !== undefined && bytes.length > maxLength) fail(`${name} must encode at most ${maxLength} bytes, got ${bytes.length}`);
  return value;
}

/** Checks an id: base64url of 16 bytes (22 characters). */
export function expectId(value: unknown, name: string): string {
  return expectBase64Url(value, name, ID_BYTES);
}

export function expectFingerprint(value: unknown, name: string): string {
  return expectBase64Url(value, name, FINGERPRINT_BYTES);
}

export function expectPublicKey(value: unknown, name: string): string {
  return expectBase64Url(value, name, PUBLIC_KEY_BYTES);
}

/** Checks an array's length and each item, and optionally that items are unique (by JSON form). */
export function expectArray<T>(
  value: unknown,
  name: string,
  minItems: number,
  maxItems: number,
  item: (element: unknown, elementName: string) => T,
  unique = false,
): T[] {
  if (!Array.isArray(value)) fail(`${name} must be an array`);
  if (value.length < minItems || value.length > maxItems) {
    fail(`${name} must have ${minItems} to ${maxItems} items, got ${value.length}`);
  }
  const items = value.map((element, index) => item(element, `${name}[${index}]`));
  if (unique && new Set(items.map((element) => JSON.stringify(element))).size !== items.length) {
    fail(`${name} must not contain duplicates`);
  }
  return items;
}

/** Checks a null or an AuditHeadRef {seq, hash}. */
export function expectAuditHeadRef(value: unknown, name: string): { seq: number; hash: string } | null {
  if (value === null) return null;
  const head = expectMembers(value, name, ['seq', 'hash']);
  return { seq: expectInteger(head.seq, `${name}.seq`), hash: expectBase64Url(head.hash, `${name}.hash`, 32) };
}

/** Returns a fresh random id: base64url of 16 random bytes. */
export function newId(): string {
  return toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(ID_BYTES)));
}
