import { describe, expect, it } from 'vitest';
import {
  CLOCK_SKEW_SECONDS, createOrg, createRequest, createRevocation, issueDeviceCert, newId, SealingPrivateKey, signAuditHead,
  signObject, signPolicy, SigningPrivateKey, verifyAuditHead, verifyConsumerCert, verifyDeviceCert, verifyOrg, verifyPolicy, verifyRequest,
  verifyRevocation, verifySecret, buildSecretTombstone, decryptSecret, DataKey, policyHash, type ProtocolErrorCode, type Signed, type BodyHeader, type PolicyBody,
} from '../../src/protocol/index.js';
import { at, clone, defined, makeRequest, makeSecret, makeWorld, NOW, requestFields, type World } from './fixtures.js';

function policyFields(world: World): Omit<PolicyBody, 'v' | 'kind' | 'org'> {
  const { v: _v, kind: _kind, org: _org, ...fields } = clone(world.policy.body);
  return fields;
}

async function expectCode(promise: Promise<unknown>, code: ProtocolErrorCode): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'ProtocolError', code });
}

function withBody<B extends BodyHeader>(signed: Signed<B>, changes: Record<string, unknown>): Signed<B> {
  return { ...clone(signed), body: { ...clone(signed.body), ...changes } };
}

describe('verifyOrg', () => {
  it('accepts a self-signed org and returns its trust anchor', async () => {
    const identity = await SigningPrivateKey.generate('org-identity');
    const { org, trust } = await verifyOrg(await createOrg(identity, { name: 'Acme', created: NOW }), identity.publicKey.fingerprint());
    expect(org.body.name).toBe('Acme');
    expect(trust.identityKey.equals(identity.publicKey)).toBe(true);
  });

  it('rejects an org other than the pinned one', async () => {
    const identity = await SigningPrivateKey.generate('org-identity');
    const other = await SigningPrivateKey.generate('org-identity');
    await expectCode(verifyOrg(await createOrg(other, { name: 'Acme', created: NOW }), identity.publicKey.fingerprint()), 'untrusted_signer');
  });

  it('rejects a tampered name', async () => {
    const identity = await SigningPrivateKey.generate('org-identity');
    const signed = await createOrg(identity, { name: 'Acme', created: NOW });
    await expectCode(verifyOrg(withBody(signed, { name: 'Evil' }), identity.publicKey.fingerprint()), 'bad_signature');
  });
});

describe('certificates', () => {
  it('rejects a device certificate signed by another key', async () => {
    const world = await makeWorld();
    const impostor = await SigningPrivateKey.generate('org-identity');
    const signed = await issueDeviceCert(impostor, { ...clone(at(world.devices, 0).cert.body), issued: NOW, expires: NOW + 10 });
    await expectCode(verifyDeviceCert(signed, world.trust, NOW), 'wrong_org');
    const forged = { ...signed, body: { ...signed.body, org: world.trust.org } };
    await expectCode(verifyDeviceCert(forged, world.trust, NOW), 'untrusted_signer');
    await expectCode(verifyDeviceCert({ ...forged, signer: world.trust.org }, world.trust, NOW), 'bad_signature');
  });

  it('applies the clock-skew leeway to expiry', async () => {
    const world = await makeWorld();
    const expires = at(world.devices, 0).cert.body.expires;
    await verifyDeviceCert(at(world.devices, 0).cert, world.trust, expires + CLOCK_SKEW_SECONDS);
    await expectCode(verifyDeviceCert(at(world.devices, 0).cert, world.trust, expires + CLOCK_SKEW_SECONDS + 1), 'expired');
  });

  it('rejects a certificate before its start', async () => {
    const world = await makeWorld();
    const issued = world.consumer.body.issued;
    await expectCode(verifyConsumerCert(world.consumer, world.trust, issued - CLOCK_SKEW_SECONDS - 1), 'not_yet_valid');
  });

  it('rejects revoked devices and consumers', async () => {
    const world = await makeWorld();
    const device = at(world.devices, 0).cert;
    const revocation = await verifyRevocation(
      await createRevocation(world.identity, { subject: 'device', id: device.body.device, reason: 'lost phone', revoked: NOW }),
      world.trust,
    );
    await expectCode(verifyDeviceCert(device, world.trust, NOW, [revocation]), 'revoked');
    await verifyConsumerCert(world.consumer, world.trust, NOW, [revocation]);
    const consumerRevocation = await verifyRevocation(
      await createRevocation(world.identity, { subject: 'consumer', id: world.consumer.body.consumer, reason: '', revoked: NOW }),
      world.trust,
    );
    await expectCode(verifyConsumerCert(world.consumer, world.trust, NOW, [consumerRevocation]), 'revoked');
  });

  it('rejects unknown and missing members', async () => {
    const world = await makeWorld();
    await expectCode(verifyConsumerCert(withBody(world.consumer, { extra: 1 }), world.trust, NOW), 'invalid_object');
    const { name: _name, ...missing } = world.consumer.body;
    await expectCode(verifyConsumerCert({ ...world.consumer, body: missing }, world.trust, NOW), 'invalid_object');
    await expectCode(verifyConsumerCert(withBody(world.consumer, { expires: 1.5 }), world.trust, NOW), 'invalid_object');
    await expectCode(verifyConsumerCert(withBody(world.consumer, { v: 2 }), world.trust, NOW), 'unknown_version');
    await expectCode(verifyConsumerCert(withBody(world.consumer, { kind: 'widget' }), world.trust, NOW), 'unknown_kind');
    await expectCode(verifyConsumerCert(withBody(world.consumer, { kind: 'device-cert' }), world.trust, NOW), 'invalid_object');
  });

  it('rejects a trust anchor whose org is not the key fingerprint', async () => {
    const world = await makeWorld();
    const other = await SigningPrivateKey.generate('org-identity');
    await expectCode(verifyConsumerCert(world.consumer, { org: world.trust.org, identityKey: other.publicKey }, NOW), 'untrusted_signer');
  });
});

describe('verifyPolicy', () => {
  it('rejects a rollback below the highest version seen', async () => {
    const world = await makeWorld();
    await verifyPolicy(world.policy, world.trust, { minVersion: 3 });
    await expectCode(verifyPolicy(world.policy, world.trust, { minVersion: 4 }), 'policy_rollback');
  });

  it('rejects a quorum above the approver count and bad globs', async () => {
    const world = await makeWorld();
    const fields = policyFields(world);
    await expect(signPolicy(world.identity, { ...fields, quorum: 3 })).rejects.toMatchObject({ code: 'invalid_object' });
    await expect(signPolicy(world.identity, { ...fields, paths: ['prod/../x'] })).rejects.toMatchObject({ code: 'invalid_path' });
    await expect(signPolicy(world.identity, { ...fields, paths: ['prod/a**'] })).rejects.toMatchObject({ code: 'invalid_path' });
  });
});

describe('verifySecret', () => {
  it('rejects a rollback below the highest version seen', async () => {
    const world = await makeWorld();
    await expectCode(verifySecret(world.secret, world.trust, world.policy, { minVersion: 8 }), 'secret_rollback');
  });

  it('rejects a secret pinned to another policy version', async () => {
    const world = await makeWorld();
    const fields = policyFields(world);
    const newer = await verifyPolicy(await signPolicy(world.identity, { ...fields, version: 4 }), world.trust, { minVersion: 3 });
    await expectCode(verifySecret(world.secret, world.trust, newer, { minVersion: 1 }), 'policy_mismatch');
  });

  it('rejects grants to devices outside the policy', async () => {
    const world = await makeWorld();
    const fields = policyFields(world);
    const narrow = await verifyPolicy(
      await signPolicy(world.identity, { ...fields, approvers: [at(world.devices, 0).cert.body.device] }),
      world.trust,
      { minVersion: 1 },
    );
    const body = { ...clone(world.secret.body), policy: { name: narrow.body.name, version: narrow.body.version, hash: policyHash(narrow) } };
    const resigned = await signObject(body, world.identity);
    await expectCode(verifySecret(resigned, world.trust, narrow, { minVersion: 1 }), 'not_approver');
  });

  it('rejects a path the policy does not cover', async () => {
    const world = await makeWorld();
    const resigned = await signObject({ ...clone(world.secret.body), path: 'staging/db/url' }, world.identity);
    await expectCode(verifySecret(resigned, world.trust, world.policy, { minVersion: 1 }), 'policy_mismatch');
    await expect(makeSecret(world, 'staging/x', 1, 'v')).rejects.toMatchObject({ code: 'policy_mismatch' });
  });

  it('rejects decryption with another version AAD', async () => {
    const world = await makeWorld();
    const resigned = await signObject({ ...clone(world.secret.body), version: 8 }, world.identity);
    const moved = await verifySecret(resigned, world.trust, world.policy, { minVersion: 1 });
    const device = at(world.devices, 0);
    const { openGrant } = await import('../../src/protocol/index.js');
    const grant = defined(world.secret.body.grants.find((g) => g.device === device.cert.body.device), 'grant');
    const dek = await openGrant(grant, world.secret.body, device.cert.body.device, device.sealing);
    await expectCode(decryptSecret(moved, dek), 'decrypt_failed');
    await expectCode(openGrant(grant, moved.body, device.cert.body.device, device.sealing), 'decrypt_failed');
  });

  it('tombstone verifies and refuses decryption', async () => {
    const world = await makeWorld();
    const tombstone = await verifySecret(
      await buildSecretTombstone(world.identity, { policy: world.policy, path: 'prod/db/url', version: 8, created: NOW }),
      world.trust,
      world.policy,
      { minVersion: 7 },
    );
    await expectCode(decryptSecret(tombstone, DataKey.generate()), 'secret_deleted');
  });
});

describe('verifyRequest', () => {
  it('rejects a request signed by another host', async () => {
    const world = await makeWorld();
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const other = await SigningPrivateKey.generate('consumer-host');
    const signed = await createRequest(other, requestFields(world, ephemeral));
    await expectCode(verifyRequest(signed, world.trust, world.consumer, NOW), 'untrusted_signer');
  });

  it('rejects a request naming another consumer', async () => {
    const world = await makeWorld();
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const signed = await createRequest(world.host, requestFields(world, ephemeral, { consumer: newId() }));
    await expectCode(verifyRequest(signed, world.trust, world.consumer, NOW), 'binding_mismatch');
  });

  it('checks times with leeway', async () => {
    const world = await makeWorld();
    const { signed } = await makeRequest(world);
    await expectCode(verifyRequest(signed, world.trust, world.consumer, NOW - CLOCK_SKEW_SECONDS - 1), 'not_yet_valid');
    await expectCode(verifyRequest(signed, world.trust, world.consumer, NOW + 300 + CLOCK_SKEW_SECONDS + 1), 'expired');
  });

  it('rejects overlong lifetimes, bad paths and zero leases', async () => {
    const world = await makeWorld();
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const cases: [Record<string, unknown>, ProtocolErrorCode][] = [
      [{ expires: NOW + 901 }, 'invalid_object'],
      [{ expires: NOW }, 'invalid_object'],
      [{ paths: ['prod/./x'] }, 'invalid_path'],
      [{ paths: [] }, 'invalid_object'],
      [{ paths: ['a', 'a'] }, 'invalid_object'],
      [{ leaseSeconds: 0 }, 'invalid_object'],
      [{ reason: 'x'.repeat(1025) }, 'invalid_object'],
    ];
    for (const [override, code] of cases) {
      await expect(createRequest(world.host, requestFields(world, ephemeral, override as never))).rejects.toMatchObject({ code });
    }
  });
});

describe('verifyAuditHead', () => {
  it('accepts the broker key and rejects others', async () => {
    const world = await makeWorld();
    const broker = await SigningPrivateKey.generate('broker');
    const signed = await signAuditHead(broker, { org: world.trust.org, seq: 5, hash: world.trust.org, time: NOW });
    expect((await verifyAuditHead(signed, world.trust.org, broker.publicKey)).body.seq).toBe(5);
    await expectCode(verifyAuditHead(signed, world.trust.org, world.identity.publicKey), 'untrusted_signer');
    await expectCode(verifyAuditHead(withBody(signed, { seq: 4 }), world.trust.org, broker.publicKey), 'bad_signature');
  });
});
