import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromBase64Url, ProtocolError, SigningPublicKey, toBase64Url, verifySigned, signedMessage, contextForKind } from '../../src/protocol/index.js';
import { generateVectors, type VectorEntry } from './generate.js';

const path = join(import.meta.dirname, 'stillvault-v1.json');
const file = JSON.parse(readFileSync(path, 'utf8')) as { entries: VectorEntry[] };

describe('stillvault-v1 vectors', () => {
  it('cover every kind with valid and invalid entries', () => {
    const kinds = new Set(file.entries.map((e) => e.kind));
    expect(kinds.size).toBe(9);
    for (const kind of kinds) {
      expect(file.entries.filter((e) => e.kind === kind && e.valid)).toHaveLength(1);
      expect(file.entries.filter((e) => e.kind === kind && !e.valid).length).toBeGreaterThanOrEqual(5);
    }
  });

  it.each(file.entries.map((e, i) => [i, e.kind, e.reason, e]))('entry %i (%s, %s)', async (_i, _kind, _reason, e) => {
    expect(e.canonical).toBe(toBase64Url(signedMessage(contextForKind(e.kind), e.object.body)));
    expect(e.signature).toBe(e.object.sig);
    const key = new SigningPublicKey(fromBase64Url(e.publicKey));
    let outcome = 'ok';
    try {
      await verifySigned(e.object, e.kind, e.org, key);
    } catch (error) {
      expect(error).toBeInstanceOf(ProtocolError);
      outcome = (error as ProtocolError).code;
    }
    expect(outcome).toBe(e.reason);
    expect(e.valid).toBe(e.reason === 'ok');
    const rawValid = await key.verify(fromBase64Url(e.canonical), fromBase64Url(e.signature));
    if (e.valid) expect(rawValid).toBe(true);
    if (e.reason === 'bad_signature') expect(rawValid).toBe(false);
  });

  it('regenerate byte for byte', async () => {
    expect(`${JSON.stringify(await generateVectors(), null, 2)}\n`).toBe(readFileSync(path, 'utf8'));
  });
});
