import { describe, expect, it } from 'vitest';
import { DataKey, newId, openGrant, openRelease, SealingPrivateKey, sealGrant, sealRelease, type ReleaseBinding } from '../../src/protocol/index.js';

const ORG = 'A'.repeat(43);

async function expectDecryptFailed(promise: Promise<unknown>): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code: 'decrypt_failed' });
}

describe('grants', () => {
  it('open only for the bound org, path, version and device key', async () => {
    const device = await SealingPrivateKey.generate('device-sealing');
    const other = await SealingPrivateKey.generate('device-sealing');
    const id = newId();
    const key = DataKey.generate();
    const expected = key.exportBytes();
    const grant = await sealGrant({ org: ORG, path: 'a/b', version: 2, device: id, sealingKey: device.publicKey }, key);
    expect(grant.scheme).toBe('whole');

    const opened = await openGrant(grant, { org: ORG, path: 'a/b', version: 2 }, id, device);
    expect(opened.exportBytes()).toEqual(expected);
    await expectDecryptFailed(openGrant(grant, { org: ORG, path: 'a/c', version: 2 }, id, device));
    await expectDecryptFailed(openGrant(grant, { org: ORG, path: 'a/b', version: 3 }, id, device));
    await expectDecryptFailed(openGrant(grant, { org: 'B'.repeat(43), path: 'a/b', version: 2 }, id, device));
    await expectDecryptFailed(openGrant(grant, { org: ORG, path: 'a/b', version: 2 }, id, other));
    await expect(openGrant(grant, { org: ORG, path: 'a/b', version: 2 }, newId(), device)).rejects.toMatchObject({ code: 'binding_mismatch' });
    const relabelled = newId();
    await expectDecryptFailed(openGrant({ ...grant, device: relabelled }, { org: ORG, path: 'a/b', version: 2 }, relabelled, device));
  });
});

describe('releases', () => {
  const base = (): ReleaseBinding => ({ org: ORG, request: newId(), requestHash: 'h'.repeat(43), device: newId(), path: 'a/b', secretVersion: 4 });

  it('open only for the bound request, device, path and version', async () => {
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const binding = base();
    const key = DataKey.generate();
    const expected = key.exportBytes();
    const release = await sealRelease(binding, key, ephemeral.publicKey);

    expect((await openRelease(release, binding, ephemeral)).exportBytes()).toEqual(expected);
    await expectDecryptFailed(openRelease(release, { ...binding, request: newId() }, ephemeral));
    await expectDecryptFailed(openRelease(release, { ...binding, requestHash: 'g'.repeat(43) }, ephemeral));
    await expectDecryptFailed(openRelease(release, { ...binding, device: newId() }, ephemeral));
    await expectDecryptFailed(openRelease(release, { ...binding, org: 'B'.repeat(43) }, ephemeral));
    await expectDecryptFailed(openRelease(release, binding, await SealingPrivateKey.generate('request-ephemeral')));
    await expect(openRelease(release, { ...binding, path: 'a/c' }, ephemeral)).rejects.toMatchObject({ code: 'binding_mismatch' });
    await expect(openRelease(release, { ...binding, secretVersion: 5 }, ephemeral)).rejects.toMatchObject({ code: 'binding_mismatch' });
    await expectDecryptFailed(openRelease({ ...release, path: 'a/c' }, { ...binding, path: 'a/c' }, ephemeral));
    await expectDecryptFailed(openRelease({ ...release, secretVersion: 5 }, { ...binding, secretVersion: 5 }, ephemeral));
  });

  it('a grant never opens as a release', async () => {
    const key = await SealingPrivateKey.generate('device-sealing');
    const binding = base();
    const grant = await sealGrant({ org: ORG, path: binding.path, version: binding.secretVersion, device: binding.device, sealingKey: key.publicKey }, DataKey.generate());
    await expectDecryptFailed(openRelease({ ...grant, path: binding.path, secretVersion: binding.secretVersion }, binding, key));
  });

  it('carries share fields for Shamir schemes', async () => {
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const binding = base();
    const release = await sealRelease(binding, DataKey.generate(), ephemeral.publicKey, { threshold: 2, share: 1 });
    expect(release).toMatchObject({ scheme: 'shamir', threshold: 2, share: 1 });
    await openRelease(release, binding, ephemeral);
    await expectDecryptFailed(openRelease({ ...release, share: 2 }, binding, ephemeral));
  });
});
