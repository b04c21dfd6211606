// Attacks on the protocol core, one per test: each builds the hostile input
// an attacker (the broker, another org, a careless caller) could produce and
// checks that the verifier rejects it with the stable code.
import { describe, expect, it } from 'vitest';
import {
  approveRequest, createOrg, createRevocation, fingerprintOf, issueConsumerCert, issueDeviceCert, newId, openApproval, SealingPrivateKey,
  SecretBytes, buildSecretVersion, policyHash, signObject, signPolicy, SigningPrivateKey, toBase64Url, verifyApproval, verifyConsumerCert,
  verifyDeviceCert, verifyOrg, verifyPolicy, verifyRequest, verifyRevocation, verifySecret,
  type OrgTrust, type PolicyBody, type ProtocolErrorCode, type SecretBody, type Verified,
} from '../../src/protocol/index.js';
import { at, clone, makeDevice, makeRequest, makeWorld, NOW, requestFields, type World } from './fixtures.js';

async function expectCode(promise: Promise<unknown>, code: ProtocolErrorCode): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'ProtocolError', code });
}

/** The Ed25519 identity point (y = 1): a public key of small order. */
const SMALL_ORDER_KEY = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0));
/** R = identity, S = 0: verifies for every message under a small-order key with cofactorless verification. */
const FORGED_SIGNATURE = Uint8Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 0));

async function makeOtherOrg(): Promise<{ identity: SigningPrivateKey; trust: OrgTrust }> {
  const identity = await SigningPrivateKey.generate('org-identity');
  const { trust } = await verifyOrg(await createOrg(identity, { name: 'Other', created: NOW - 1000 }), identity.publicKey.fingerprint());
  return { identity, trust };
}

async function makeWidePolicy(world: World): Promise<Verified<PolicyBody>> {
  const signed = await signPolicy(world.identity, {
    ...world.policy.body, name: 'wide', version: 1, paths: ['prod/**'], maxLeaseSeconds: 86_400,
  });
  return verifyPolicy(signed, world.trust, { minVersion: 1 });
}

describe('protocol attacks', () => {
  it('small-order host key forges requests', async () => {
    const world = await makeWorld();
    const consumer = await verifyConsumerCert(
      await issueConsumerCert(world.identity, {
        consumer: newId(), name: 'weak', hostKey: toBase64Url(SMALL_ORDER_KEY), issued: NOW - 100, expires: NOW + 86_400,
      }),
      world.trust,
      NOW,
    );
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const body = { ...requestFields(world, ephemeral, { consumer: consumer.body.consumer }), v: 1, kind: 'request' };
    const forged = { body, signer: fingerprintOf(SMALL_ORDER_KEY), sig: toBase64Url(FORGED_SIGNATURE) };
    await expectCode(verifyRequest(forged, world.trust, consumer, NOW), 'invalid_key');
  });

  it('approval opened under another policy', async () => {
    const world = await makeWorld();
    const wide = await makeWidePolicy(world);
    const { request, ephemeral } = await makeRequest(world, { leaseSeconds: 7200 });
    const device = at(world.devices, 0);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret],
      leaseSeconds: 7200, created: NOW, auditHead: null,
    });
    const context = { trust: world.trust, request, deviceCert: device.cert, now: NOW };
    await expectCode(verifyApproval(clone(signed), { ...context, policy: world.policy }), 'lease_exceeded');
    const approval = await verifyApproval(clone(signed), { ...context, policy: wide });
    await expectCode(openApproval(approval, request, ephemeral, new Map([['prod/db/url', world.secret]])), 'policy_mismatch');
  });

  it('approval not from verifyApproval', async () => {
    const world = await makeWorld();
    const { request, ephemeral } = await makeRequest(world);
    const device = at(world.devices, 0);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret],
      leaseSeconds: 60, created: NOW, auditHead: null,
    });
    const unverified = signed as typeof signed & Verified<typeof signed.body>;
    await expectCode(openApproval(unverified, request, ephemeral, new Map([['prod/db/url', world.secret]])), 'binding_mismatch');
  });

  it('secret checked against foreign policy', async () => {
    const world = await makeWorld();
    const other = await makeOtherOrg();
    const foreignPolicy = await verifyPolicy(
      await signPolicy(other.identity, { ...world.policy.body, name: 'foreign', version: 1 }),
      other.trust,
      { minVersion: 1 },
    );
    const body: SecretBody = {
      v: 1, kind: 'secret', org: world.trust.org, path: 'prod/db/url', version: 8,
      policy: { name: 'foreign', version: 1, hash: policyHash(foreignPolicy) },
      aead: 'A256GCM', nonce: '', grants: [], created: NOW, deleted: true, ciphertext: '',
    };
    const signed = await signObject(body, world.identity);
    await expectCode(verifySecret(signed, world.trust, foreignPolicy, { minVersion: 1 }), 'wrong_org');
  });

  it('revocation from another org', async () => {
    const world = await makeWorld();
    const other = await makeOtherOrg();
    const device = at(world.devices, 0).cert;
    const foreign = await verifyRevocation(
      await createRevocation(other.identity, { subject: 'device', id: device.body.device, reason: '', revoked: NOW }),
      other.trust,
    );
    await expectCode(verifyDeviceCert(device, world.trust, NOW, [foreign]), 'wrong_org');
    await expectCode(verifyConsumerCert(world.consumer, world.trust, NOW, [foreign]), 'wrong_org');
  });

  it('grant sealed to foreign device', async () => {
    const world = await makeWorld();
    const other = await makeOtherOrg();
    const impostor = await makeDevice(other.identity, other.trust, 'impostor');
    const sameId = await verifyDeviceCert(
      await issueDeviceCert(other.identity, { ...impostor.cert.body, device: at(world.devices, 0).cert.body.device }),
      other.trust,
      NOW,
    );
    const build = buildSecretVersion(world.identity, {
      policy: world.policy, devices: [sameId], path: 'prod/db/url', version: 8, created: NOW, plaintext: SecretBytes.fromString('x'),
    });
    await expectCode(build, 'wrong_org');
  });

  it('grant to small-order sealing key', async () => {
    const world = await makeWorld();
    const device = at(world.devices, 0);
    const weak = await verifyDeviceCert(
      await issueDeviceCert(world.identity, { ...device.cert.body, sealingKey: toBase64Url(new Uint8Array(32)) }),
      world.trust,
      NOW,
    );
    const build = buildSecretVersion(world.identity, {
      policy: world.policy, devices: [weak], path: 'prod/db/url', version: 8, created: NOW, plaintext: SecretBytes.fromString('x'),
    });
    await expectCode(build, 'invalid_key');
  });

  it('rollback check with NaN minimum', async () => {
    const world = await makeWorld();
    await expect(verifyPolicy(clone(world.policy), world.trust, { minVersion: Number.NaN })).rejects.toThrow(TypeError);
    await expect(verifySecret(clone(world.secret), world.trust, world.policy, { minVersion: Number.NaN })).rejects.toThrow(TypeError);
  });

  it('__proto__ member in a body', async () => {
    const world = await makeWorld();
    const text = JSON.stringify(world.policy).replace('"v":1', '"__proto__":{"quorum":0},"v":1');
    await expectCode(verifyPolicy(JSON.parse(text), world.trust, { minVersion: 1 }), 'invalid_object');
  });
});
