// Node-only: util.inspect is Node's; the rest of the checks would run in a browser too.
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DataKey, SealingPrivateKey, SecretBytes, SigningPrivateKey, toBase64Url, toHex, utf8Encode } from '../../src/protocol/index.js';

const SECRET = 'correct horse battery staple';

function renderings(value: { toString(): string }): string[] {
  // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- the point is to interpolate the object itself
  const templated = `${value}`;
  const out: string[] = [String(value), templated, inspect(value), inspect({ nested: value }, { depth: 5 }), inspect(value, { showHidden: true })];
  try {
    out.push(JSON.stringify(value));
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
  }
  try {
    out.push(JSON.stringify({ nested: value }));
  } catch (error) {
    expect(error).toBeInstanceOf(TypeError);
  }
  return out;
}

function forms(bytes: Uint8Array): string[] {
  return [toHex(bytes), toBase64Url(bytes), [...bytes].join(','), [...bytes].slice(0, 8).join(', ')];
}

describe('opaque types', () => {
  it('SecretBytes never renders its bytes', () => {
    const secret = SecretBytes.fromString(SECRET);
    for (const text of renderings(secret)) {
      expect(text).not.toContain(SECRET);
      for (const form of forms(utf8Encode(SECRET))) expect(text).not.toContain(form);
    }
  });

  it('DataKey never renders its bytes', () => {
    const key = DataKey.generate();
    const bytes = key.exportBytes();
    for (const text of renderings(key)) {
      for (const form of forms(bytes)) expect(text).not.toContain(form);
    }
  });

  it('private keys never render their seeds', async () => {
    for (const key of [await SigningPrivateKey.generate('org-identity'), await SealingPrivateKey.generate('device-sealing')]) {
      const seed = key.exportSeed();
      for (const text of renderings(key)) {
        for (const form of forms(seed)) expect(text).not.toContain(form);
      }
    }
  });
});

describe('private key fields', () => {
  it('exposes no seed through own keys', async () => {
    const key = await SigningPrivateKey.generate('device-signing');
    const seed = key.exportSeed();
    const ownValues = Object.values(key as unknown as Record<string, unknown>);
    for (const value of ownValues) {
      expect(value instanceof Uint8Array && value.length === seed.length && value.every((byte, i) => byte === seed[i])).toBe(false);
    }
    expect(JSON.stringify(Object.keys(key))).not.toContain('seed');
    seed.fill(0);
  });
});

describe('opaque byte holders', () => {
  it('have no own enumerable bytes', () => {
    const secret = SecretBytes.fromString(SECRET);
    const key = DataKey.generate();
    expect(Object.keys(secret)).toEqual([]);
    expect(Object.keys(key)).toEqual([]);
    expect(Object.values(secret)).toEqual([]);
  });
});
