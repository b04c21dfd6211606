import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  aeadDecrypt, aeadEncrypt, approveRequest, DataKey, fromBase64Url, openRelease, requestHash, SealingPrivateKey, sealRelease, SecretBytes,
  signObject, SigningPrivateKey, toBase64Url, verifyApproval, verifyConsumerCert, verifySigned, newId, canonicalize, type ReleaseBinding,
} from '../../src/protocol/index.js';
import { at, clone, defined, makeRequest, makeWorld, NOW } from './fixtures.js';

const RUNS = 25;

/** Flips one bit of a base64url string's decoded bytes. */
function flipBit(text: string, bit: number): string {
  const bytes = fromBase64Url(text);
  const index = bit % (bytes.length * 8);
  bytes[index >> 3] = (bytes[index >> 3] ?? 0) ^ (1 << (index & 7));
  return toBase64Url(bytes);
}

/** Flips one bit in one character of a JSON string leaf, keeping the JSON valid. */
function flipStringBit(text: string, position: number): string {
  const index = position % text.length;
  const code = text.charCodeAt(index) ^ 1;
  return text.slice(0, index) + String.fromCharCode(code) + text.slice(index + 1);
}

describe('properties', () => {
  it('sign and verify round-trip for any JSON body', async () => {
    const key = await SigningPrivateKey.generate('org-identity');
    const org = key.publicKey.fingerprint();
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !['v', 'kind', 'org'].includes(k)), fc.jsonValue(), { maxKeys: 6 }), async (extra) => {
        const body = { ...clone(extra), v: 1 as const, kind: 'policy' as const, org };
        const signed = await signObject(body, key);
        await verifySigned(clone(signed), 'policy', org, key.publicKey);
      }),
      { numRuns: RUNS },
    );
  });

  it('seal and open round-trip for any binding', async () => {
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 1, max: 2 ** 40 }), fc.stringMatching(/^[a-z0-9]{1,12}(\/[a-z0-9]{1,12}){0,3}$/), async (bytes, version, path) => {
        const binding: ReleaseBinding = { org: 'o'.repeat(43), request: newId(), requestHash: 'h'.repeat(43), device: newId(), path, secretVersion: version };
        const release = await sealRelease(binding, DataKey.fromBytes(bytes), ephemeral.publicKey);
        expect((await openRelease(clone(release), binding, ephemeral)).exportBytes()).toEqual(bytes);
      }),
      { numRuns: RUNS },
    );
  });

  it('any bit flip in a signed body or signature is rejected', async () => {
    const world = await makeWorld();
    const text = JSON.stringify(world.consumer.body);
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.boolean(), async (position, inSignature) => {
        let candidate: unknown;
        if (inSignature) {
          candidate = { ...world.consumer, sig: flipBit(world.consumer.sig, position) };
        } else {
          let body: unknown;
          try {
            body = JSON.parse(flipStringBit(text, position));
          } catch {
            return; // the flip broke the JSON syntax, which no verifier receives
          }
          candidate = { ...world.consumer, body };
        }
        await expect(verifyConsumerCert(candidate, world.trust, NOW)).rejects.toMatchObject({ name: 'ProtocolError' });
      }),
      { numRuns: 60 },
    );
  });

  it('any bit flip in an AEAD ciphertext is rejected', async () => {
    const key = DataKey.generate();
    const bytes = key.exportBytes();
    const aad = new Uint8Array([1, 2, 3]);
    const { nonce, ciphertext } = await aeadEncrypt(key, SecretBytes.fromString('some secret value'), aad);
    await fc.assert(
      fc.asyncProperty(fc.nat(), async (bit) => {
        const tampered = fromBase64Url(flipBit(toBase64Url(ciphertext), bit));
        await expect(aeadDecrypt(DataKey.fromBytes(bytes), nonce, tampered, aad)).rejects.toMatchObject({ code: 'decrypt_failed' });
      }),
      { numRuns: RUNS },
    );
  });

  it('any bit flip in a grant or release is rejected', async () => {
    const world = await makeWorld();
    const { request, ephemeral } = await makeRequest(world);
    const device = at(world.devices, 0);
    const approval = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret], leaseSeconds: 60, created: NOW, auditHead: null,
    });
    const release = at(approval.body.releases, 0);
    const binding: ReleaseBinding = {
      org: world.trust.org, request: request.body.id, requestHash: requestHash(request), device: device.cert.body.device, path: release.path, secretVersion: release.secretVersion,
    };
    await openRelease(release, binding, ephemeral);
    const grant = at(world.secret.body.grants, 0);
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.constantFrom('enc', 'ct') , async (bit, member) => {
        const tamperedRelease = { ...release, [member]: flipBit(release[member], bit) };
        await expect(openRelease(tamperedRelease, binding, ephemeral)).rejects.toMatchObject({ code: 'decrypt_failed' });
        const { openGrant } = await import('../../src/protocol/index.js');
        const tamperedGrant = { ...grant, [member]: flipBit(grant[member], bit) };
        const owner = defined(world.devices.find((candidate) => candidate.cert.body.device === grant.device), 'grant owner');
        await expect(openGrant(tamperedGrant, world.secret.body, grant.device, owner.sealing)).rejects.toMatchObject({ code: 'decrypt_failed' });
        const tamperedApproval = { ...approval, body: { ...approval.body, releases: [tamperedRelease] } };
        await expect(verifyApproval(tamperedApproval, { trust: world.trust, request, deviceCert: device.cert, policy: world.policy, now: NOW }))
          .rejects.toMatchObject({ code: 'bad_signature' });
      }),
      { numRuns: RUNS },
    );
  });

  it('canonical form ignores member order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 8 }), (value) => {
        const reversed = Object.fromEntries(Object.entries(value).reverse());
        expect(canonicalize(reversed)).toBe(canonicalize(value));
        expect(canonicalize(JSON.parse(JSON.stringify(value)))).toBe(canonicalize(value));
      }),
      { numRuns: 200 },
    );
  });
});
