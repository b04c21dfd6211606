import { badRequest } from './errors.js';
import { isRecord } from '../protocol/signed.js';

/** Checks on untrusted JSON, each naming the member it rejects. */

export function requireRecord(value: unknown, name: string): Record<string, unknown> {
  if (!isRecord(value)) throw badRequest(`${name} must be a JSON object`);
  return value;
}

export function requireString(record: Record<string, unknown>, key: string, maxLength = 1024): string {
  const value = record[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw badRequest(`${key} must be a non-empty string of at most ${maxLength} characters`);
  }
  return value;
}

export function requireInteger(record: Record<string, unknown>, key: string, min = 0): number {
  const value = record[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw badRequest(`${key} must be an integer >= ${min}`);
  }
  return value;
}

export function requireStringArray(record: Record<string, unknown>, key: string, maxItems = 256): string[] {
  const value = record[key];
  if (!Array.isArray(value) || value.length > maxItems || !value.every((item) => typeof item === 'string' && item.length > 0)) {
    throw badRequest(`${key} must be an array of at most ${maxItems} non-empty strings`);
  }
  return value as string[];
}

export function requireOneOf<T extends string>(record: Record<string, unknown>, key: string, allowed: readonly T[]): T {
  const value = record[key];
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw badRequest(`${key} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Ids (request, device, consumer, invite) are short base64url-alphabet strings. */
export function requireId(record: Record<string, unknown>, key: string): string {
  const value = record[key];
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw badRequest(`${key} must be 1 to 64 characters of A-Z a-z 0-9 _ -`);
  }
  return value;
}

export function isId(value: string): boolean {
  return ID_PATTERN.test(value);
}
