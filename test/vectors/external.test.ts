// Published vectors: RFC 8032 (Ed25519), RFC 9180 A.1 (HPKE), Wycheproof
// (Ed25519, X25519, AES-GCM, HKDF-SHA256) and RFC 8785 (JCS), run against the
// primitives the protocol uses.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { describe, expect, it } from 'vitest';
import { asBufferSource } from '../../src/protocol/encoding.js';
import { canonicalize, SigningPrivateKey, SigningPublicKey, toHex } from '../../src/protocol/index.js';
import { at } from '../protocol/fixtures.js';
import { fromHex } from './hex.js';

const dir = import.meta.dirname;
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the file's JSON shape
const load = <T>(path: string): T => JSON.parse(readFileSync(join(dir, path), 'utf8')) as T;
const subtle = globalThis.crypto.subtle;

interface Rfc8032 { tests: { name: string; secretKey: string; publicKey: string; message: string; signature: string }[] }

describe('RFC 8032 Ed25519', () => {
  it.each(load<Rfc8032>('rfc8032/ed25519.json').tests.map((t) => [t.name, t]))('%s', async (_name, t) => {
    const key = await SigningPrivateKey.fromSeed('org-identity', fromHex(t.secretKey));
    expect(toHex(key.publicKey.toBytes())).toBe(t.publicKey);
    expect(toHex(await key.sign(fromHex(t.message)))).toBe(t.signature);
    expect(await new SigningPublicKey(fromHex(t.publicKey)).verify(fromHex(t.message), fromHex(t.signature))).toBe(true);
  });
});

interface Rfc9180 {
  info: string; ikmE: string; pkEm: string; skEm: string; ikmR: string; pkRm: string; skRm: string; enc: string;
  encryptions: { pt: string; aad: string; ct: string }[];
}

describe('RFC 9180 A.1 base mode', () => {
  const v = load<Rfc9180>('rfc9180/a1-base-x25519-sha256-aes128gcm.json');
  const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
  const first = at(v.encryptions, 0);

  it('derives the published key pairs', async () => {
    for (const [ikm, pk] of [[v.ikmR, v.pkRm], [v.ikmE, v.pkEm]] as const) {
      const pair = await suite.kem.deriveKeyPair(asBufferSource(fromHex(ikm)).buffer);
      expect(toHex(new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey)))).toBe(pk);
    }
  });

  it('seals to the published enc and ciphertext with ikmE', async () => {
    const recipientPublicKey = await suite.kem.importKey('raw', asBufferSource(fromHex(v.pkRm)).buffer, true);
    const sealed = await suite.seal(
      { recipientPublicKey, info: asBufferSource(fromHex(v.info)), ekm: asBufferSource(fromHex(v.ikmE)) },
      asBufferSource(fromHex(first.pt)),
      asBufferSource(fromHex(first.aad)),
    );
    expect(toHex(new Uint8Array(sealed.enc))).toBe(v.enc);
    expect(toHex(new Uint8Array(sealed.ct))).toBe(first.ct);
  });

  it('opens the published ciphertext with skRm', async () => {
    const recipientKey = await suite.kem.importKey('raw', asBufferSource(fromHex(v.skRm)).buffer, false);
    const pt = await suite.open(
      { recipientKey, enc: asBufferSource(fromHex(v.enc)), info: asBufferSource(fromHex(v.info)) },
      asBufferSource(fromHex(first.ct)),
      asBufferSource(fromHex(first.aad)),
    );
    expect(toHex(new Uint8Array(pt))).toBe(first.pt);
  });
});

interface Wycheproof<G> { testGroups: G[] }
interface WycheTest { tcId: number; result: 'valid' | 'invalid' | 'acceptable'; flags: string[] }

describe('Wycheproof Ed25519', () => {
  const file = load<Wycheproof<{ publicKey: { pk: string }; tests: (WycheTest & { msg: string; sig: string })[] }>>('wycheproof/ed25519_test.json');
  it('matches every verdict', async () => {
    let count = 0;
    for (const group of file.testGroups) {
      for (const t of group.tests) {
        let ok: boolean;
        try {
          ok = await new SigningPublicKey(fromHex(group.publicKey.pk)).verify(fromHex(t.msg), fromHex(t.sig));
        } catch {
          ok = false;
        }
        if (t.result !== 'acceptable') expect(ok, `tcId ${t.tcId}`).toBe(t.result === 'valid');
        count++;
      }
    }
    expect(count).toBeGreaterThan(100);
  });
});

describe('Wycheproof X25519', () => {
  const file = load<Wycheproof<{ tests: (WycheTest & { public: string; private: string; shared: string })[] }>>('wycheproof/x25519_test.json');
  it('matches every valid shared secret', async () => {
    const prefix = fromHex('302e020100300506032b656e04220420');
    let checked = 0;
    for (const t of file.testGroups.flatMap((group) => group.tests)) {
      if (t.result !== 'valid') continue;
      const privateKey = await subtle.importKey('pkcs8', asBufferSource(new Uint8Array([...prefix, ...fromHex(t.private)])), { name: 'X25519' }, false, ['deriveBits']);
      const publicKey = await subtle.importKey('raw', asBufferSource(fromHex(t.public)), { name: 'X25519' }, false, []);
      const shared = new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: publicKey }, privateKey, 256));
      expect(toHex(shared), `tcId ${t.tcId}`).toBe(t.shared);
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
  });
});

describe('Wycheproof AES-GCM', () => {
  const file = load<Wycheproof<{ keySize: number; ivSize: number; tagSize: number; tests: (WycheTest & { key: string; iv: string; aad: string; msg: string; ct: string; tag: string })[] }>>('wycheproof/aes_gcm_test.json');
  it('matches every 256-bit key, 96-bit nonce verdict', async () => {
    let checked = 0;
    for (const group of file.testGroups.filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128)) {
      for (const t of group.tests) {
        const key = await subtle.importKey('raw', asBufferSource(fromHex(t.key)), { name: 'AES-GCM' }, false, ['decrypt']);
        let plaintext: string | undefined;
        try {
          plaintext = toHex(new Uint8Array(await subtle.decrypt(
            { name: 'AES-GCM', iv: asBufferSource(fromHex(t.iv)), additionalData: asBufferSource(fromHex(t.aad)), tagLength: 128 },
            key,
            asBufferSource(fromHex(t.ct + t.tag)),
          )));
        } catch {
          plaintext = undefined;
        }
        if (t.result === 'valid') expect(plaintext, `tcId ${t.tcId}`).toBe(t.msg);
        if (t.result === 'invalid') expect(plaintext, `tcId ${t.tcId}`).toBeUndefined();
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
  });
});

describe('Wycheproof HKDF-SHA256', () => {
  const file = load<Wycheproof<{ tests: (WycheTest & { ikm: string; salt: string; info: string; size: number; okm: string })[] }>>('wycheproof/hkdf_sha256_test.json');
  it('matches every valid output', async () => {
    let checked = 0;
    for (const t of file.testGroups.flatMap((group) => group.tests)) {
      if (t.result !== 'valid') continue;
      const key = await subtle.importKey('raw', asBufferSource(fromHex(t.ikm)), 'HKDF', false, ['deriveBits']);
      const okm = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: asBufferSource(fromHex(t.salt)), info: asBufferSource(fromHex(t.info)) }, key, t.size * 8);
      expect(toHex(new Uint8Array(okm)), `tcId ${t.tcId}`).toBe(t.okm);
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
  });
});

describe('RFC 8785 canonical JSON', () => {
  const names = readdirSync(join(dir, 'rfc8785/input'));
  it.each(names)('%s', (name) => {
    const input: unknown = JSON.parse(readFileSync(join(dir, 'rfc8785/input', name), 'utf8'));
    expect(canonicalize(input)).toBe(readFileSync(join(dir, 'rfc8785/output', name), 'utf8'));
  });
});
