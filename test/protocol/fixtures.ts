// Builds a small org (identity key, two approver devices, one consumer host,
// a policy and a secret version) for the protocol tests. Runs in Node and
// browsers: WebCrypto only.
import {
  buildSecretVersion, createOrg, createRequest, issueConsumerCert, issueDeviceCert, newId, SealingPrivateKey, SecretBytes,
  signPolicy, SigningPrivateKey, verifyConsumerCert, verifyDeviceCert, verifyOrg, verifyPolicy, verifyRequest, verifySecret,
  type OrgTrust, type RequestBody, type Signed, type Verified, type PolicyBody, type DeviceCertBody, type ConsumerCertBody, type SecretBody,
} from '../../src/protocol/index.js';

export const NOW = 1_750_000_000;
export const SECRET_TEXT = 'postgres://app:s3cret@db/prod';

export interface Device {
  signing: SigningPrivateKey;
  sealing: SealingPrivateKey;
  cert: Verified<DeviceCertBody>;
}

export interface World {
  identity: SigningPrivateKey;
  trust: OrgTrust;
  devices: Device[];
  host: SigningPrivateKey;
  consumer: Verified<ConsumerCertBody>;
  policy: Verified<PolicyBody>;
  secret: Verified<SecretBody>;
}

export async function makeDevice(identity: SigningPrivateKey, trust: OrgTrust, name: string): Promise<Device> {
  const signing = await SigningPrivateKey.generate('device-signing');
  const sealing = await SealingPrivateKey.generate('device-sealing');
  const signed = await issueDeviceCert(identity, {
    device: newId(), name, platform: 'web', signingKey: signing.publicKey.toBase64Url(), sealingKey: sealing.publicKey.toBase64Url(),
    issued: NOW - 100, expires: NOW + 86_400,
  });
  return { signing, sealing, cert: await verifyDeviceCert(signed, trust, NOW) };
}

export async function makeWorld(): Promise<World> {
  const identity = await SigningPrivateKey.generate('org-identity');
  const { trust } = await verifyOrg(await createOrg(identity, { name: 'Acme', created: NOW - 1000 }), identity.publicKey.fingerprint());
  const devices = [await makeDevice(identity, trust, 'ana phone'), await makeDevice(identity, trust, 'ben phone')];
  const host = await SigningPrivateKey.generate('consumer-host');
  const consumer = await verifyConsumerCert(
    await issueConsumerCert(identity, { consumer: newId(), name: 'build-01', hostKey: host.publicKey.toBase64Url(), issued: NOW - 100, expires: NOW + 86_400 }),
    trust,
    NOW,
  );
  const policy = await verifyPolicy(
    await signPolicy(identity, {
      name: 'prod-db', version: 3, paths: ['prod/db/*', 'prod/**/token'], approvers: devices.map((device) => device.cert.body.device),
      quorum: 1, maxLeaseSeconds: 3600, consumers: [consumer.body.consumer], requesters: [{ users: ['ci'] }], issued: NOW - 50,
    }),
    trust,
    { minVersion: 1 },
  );
  const secret = await makeSecret({ identity, trust, devices, policy }, 'prod/db/url', 7, SECRET_TEXT);
  return { identity, trust, devices, host, consumer, policy, secret };
}

export async function makeSecret(
  world: Pick<World, 'identity' | 'trust' | 'devices' | 'policy'>,
  path: string,
  version: number,
  text: string,
): Promise<Verified<SecretBody>> {
  const signed = await buildSecretVersion(world.identity, {
    policy: world.policy, devices: world.devices.map((device) => device.cert), path, version, created: NOW - 10, plaintext: SecretBytes.fromString(text),
  });
  return verifySecret(signed, world.trust, world.policy, { minVersion: 1 });
}

export function requestFields(world: World, ephemeral: SealingPrivateKey, overrides: Partial<RequestBody> = {}): Omit<RequestBody, 'v' | 'kind'> {
  return {
    org: world.trust.org, id: newId(), consumer: world.consumer.body.consumer, host: 'build-01', paths: ['prod/db/url'],
    requester: { uid: 1001, gid: 1001, user: 'ci', pid: 4242, exe: '/usr/bin/node', cmdline: ['node', 'deploy.js'] },
    reason: 'deploy migration 42', leaseSeconds: 600, ephemeralKey: ephemeral.publicKey.toBase64Url(), created: NOW, expires: NOW + 300, auditHead: null,
    ...overrides,
  };
}

export async function makeRequest(world: World, overrides: Partial<RequestBody> = {}): Promise<{ ephemeral: SealingPrivateKey; signed: Signed<RequestBody>; request: Verified<RequestBody> }> {
  const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
  const signed = await createRequest(world.host, requestFields(world, ephemeral, overrides));
  return { ephemeral, signed, request: await verifyRequest(signed, world.trust, world.consumer, NOW) };
}

/** Returns a deep copy, as a broker round trip would. */
export function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** Returns items[index], failing the test when it is missing. */
export function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`expected an item at index ${index} of ${items.length}`);
  return item;
}

/** Returns a value, failing the test when it is undefined. */
export function defined<T>(value: T | undefined, name = 'value'): T {
  if (value === undefined) throw new Error(`expected ${name} to be defined`);
  return value;
}
