import { describe, expect, it } from 'vitest';
import {
  approveRequest, decryptSecret, denyRequest, openApproval, verifyApproval, type ProtocolErrorCode,
} from '../../src/protocol/index.js';
import { at, clone, defined, makeRequest, makeWorld, NOW, SECRET_TEXT } from './fixtures.js';

async function expectCode(promise: Promise<unknown>, code: ProtocolErrorCode): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'ProtocolError', code });
}

describe('release flow', () => {
  it('delivers the plaintext to the requesting daemon', async () => {
    const world = await makeWorld();
    const { ephemeral, request } = await makeRequest(world);
    const device = at(world.devices, 1);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret],
      leaseSeconds: 300, created: NOW + 5, auditHead: null,
    });

    const approval = await verifyApproval(clone(signed), { trust: world.trust, request, deviceCert: device.cert, policy: world.policy, now: NOW + 6 });
    const keys = await openApproval(approval, request, ephemeral, new Map([[world.secret.body.path, world.secret]]));
    const dek = defined(keys.get('prod/db/url'), 'DEK for prod/db/url');
    const plaintext = await decryptSecret(world.secret, dek);
    expect(plaintext.exposeString()).toBe(SECRET_TEXT);
    plaintext.wipe();
    dek.wipe();
  });

  it('rejects an approval replayed onto another request', async () => {
    const world = await makeWorld();
    const first = await makeRequest(world);
    const second = await makeRequest(world);
    const device = at(world.devices, 0);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request: first.request, secrets: [world.secret],
      leaseSeconds: 300, created: NOW + 5, auditHead: null,
    });
    await expectCode(verifyApproval(signed, { trust: world.trust, request: second.request, deviceCert: device.cert, policy: world.policy, now: NOW + 6 }), 'binding_mismatch');
    const approval = await verifyApproval(signed, { trust: world.trust, request: first.request, deviceCert: device.cert, policy: world.policy, now: NOW + 6 });
    await expectCode(openApproval(approval, second.request, second.ephemeral, new Map([['prod/db/url', world.secret]])), 'binding_mismatch');
  });

  it('rejects an approval from a device presenting another certificate', async () => {
    const world = await makeWorld();
    const { request } = await makeRequest(world);
    const [ana, ben] = [at(world.devices, 0), at(world.devices, 1)];
    const signed = await approveRequest({
      deviceKey: ana.signing, sealingKey: ana.sealing, deviceCert: ana.cert, request, secrets: [world.secret], leaseSeconds: 300, created: NOW, auditHead: null,
    });
    await expectCode(verifyApproval(signed, { trust: world.trust, request, deviceCert: ben.cert, policy: world.policy, now: NOW }), 'untrusted_signer');
  });

  it('rejects a lease longer than requested', async () => {
    const world = await makeWorld();
    const { request } = await makeRequest(world, { leaseSeconds: 60 });
    const device = at(world.devices, 0);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret], leaseSeconds: 61, created: NOW, auditHead: null,
    });
    await expectCode(verifyApproval(signed, { trust: world.trust, request, deviceCert: device.cert, policy: world.policy, now: NOW }), 'lease_exceeded');
  });

  it('rejects an approval after the request expired', async () => {
    const world = await makeWorld();
    const { request } = await makeRequest(world);
    const device = at(world.devices, 0);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret], leaseSeconds: 60, created: NOW, auditHead: null,
    });
    const context = { trust: world.trust, request, deviceCert: device.cert, policy: world.policy };
    await verifyApproval(signed, { ...context, now: request.body.expires + 120 });
    await expectCode(verifyApproval(signed, { ...context, now: request.body.expires + 121 }), 'expired');
  });

  it('denial verifies but never opens', async () => {
    const world = await makeWorld();
    const { request, ephemeral } = await makeRequest(world);
    const device = at(world.devices, 0);
    const signed = await denyRequest({ deviceKey: device.signing, device: device.cert.body.device, request, created: NOW, auditHead: null });
    const denial = await verifyApproval(signed, { trust: world.trust, request, deviceCert: device.cert, policy: world.policy, now: NOW });
    expect(denial.body.decision).toBe('deny');
    await expectCode(openApproval(denial, request, ephemeral, new Map([['prod/db/url', world.secret]])), 'approval_denied');
  });

  it('rejects a release for an older secret version', async () => {
    const world = await makeWorld();
    const { request, ephemeral } = await makeRequest(world);
    const device = at(world.devices, 0);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret], leaseSeconds: 60, created: NOW, auditHead: null,
    });
    const approval = await verifyApproval(signed, { trust: world.trust, request, deviceCert: device.cert, policy: world.policy, now: NOW });
    const other = { ...world.secret, body: { ...world.secret.body, version: 6 } };
    await expectCode(openApproval(approval, request, ephemeral, new Map([['prod/db/url', other]])), 'binding_mismatch');
  });

  it('rejects a wrong ephemeral key', async () => {
    const world = await makeWorld();
    const { request } = await makeRequest(world);
    const { ephemeral: otherEphemeral } = await makeRequest(world);
    const device = at(world.devices, 0);
    const signed = await approveRequest({
      deviceKey: device.signing, sealingKey: device.sealing, deviceCert: device.cert, request, secrets: [world.secret], leaseSeconds: 60, created: NOW, auditHead: null,
    });
    const approval = await verifyApproval(signed, { trust: world.trust, request, deviceCert: device.cert, policy: world.policy, now: NOW });
    await expectCode(openApproval(approval, request, otherEphemeral, new Map([['prod/db/url', world.secret]])), 'binding_mismatch');
  });
});
