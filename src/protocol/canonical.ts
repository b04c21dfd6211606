import { ProtocolError } from './errors.js';
import { utf8Encode } from './encoding.js';

/** A JSON value as the protocol handles it (I-JSON, RFC 7493). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Serializes a value with the JSON Canonicalization Scheme (RFC 8785).
 *
 * ECMAScript's own number and string serialization is what RFC 8785
 * specifies, so JSON.stringify is used for those leaves; this function adds
 * the sorted member order (by UTF-16 code units) and the I-JSON checks.
 * Rejects non-finite numbers, lone surrogates and values that are not JSON.
 */
export function canonicalize(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') return canonicalNumber(value);
  if (typeof value === 'string') return canonicalString(value);
  if (Array.isArray(value)) return `[${value.map((item) => canonicalize(item)).join(',')}]`;
  if (isPlainObject(value)) return canonicalObject(value);
  throw new ProtocolError('not_canonical', `cannot canonicalize a value of type ${typeof value}`);
}

/** Returns the UTF-8 bytes of the RFC 8785 form of `value`. */
export function canonicalBytes(value: unknown): Uint8Array {
  return utf8Encode(canonicalize(value));
}

function canonicalNumber(value: number): string {
  if (!Number.isFinite(value)) {
    throw new ProtocolError('not_canonical', 'JSON numbers must be finite');
  }
  return JSON.stringify(value);
}

function canonicalString(value: string): string {
  if (LONE_SURROGATE.test(value)) {
    throw new ProtocolError('not_canonical', 'strings must not contain lone UTF-16 surrogates');
  }
  return JSON.stringify(value);
}

function canonicalObject(value: Record<string, unknown>): string {
  const keys = Object.keys(value).sort(compareCodeUnits);
  const members: string[] = [];
  for (const key of keys) {
    const member = value[key];
    if (member === undefined) {
      throw new ProtocolError('not_canonical', `member "${key}" is undefined`);
    }
    members.push(`${canonicalString(key)}:${canonicalize(member)}`);
  }
  return `{${members.join(',')}}`;
}

function compareCodeUnits(a: string, b: string): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}
