// Test fixtures for the broker: a real broker process, a real org (identity
// key, approver devices, a consumer host, a policy, a sealed secret version)
// and the approver and consumer steps done with the protocol's own code.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  approveRequest, buildSecretVersion, createOrg, createRequest, decryptSecret, denyRequest, issueConsumerCert, issueDeviceCert, newId,
  openApproval, SealingPrivateKey, SecretBytes, signPolicy, SigningPrivateKey, verifyApproval, verifyConsumerCert, verifyDeviceCert, verifyOrg,
  verifyPolicy, verifyRequest, verifySecret,
  type ApprovalBody, type ConsumerCertBody, type DeviceCertBody, type OrgTrust, type PolicyBody, type RequestBody, type SecretBody, type Signed,
} from '../../src/protocol/index.js';
import { BrokerClient, type RequestBundle } from '../../src/broker/client.js';

export const PG_BASE_URL = 'postgres://postgres@127.0.0.1:5432/test';

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

// Broker processes -----------------------------------------------------------

export interface BrokerProcess {
  url: string;
  dataDir: string;
  child: ChildProcess;
  /** Everything the broker wrote to stderr so far (its JSON log lines). */
  logs(): string;
  stop(): Promise<void>;
}

export interface BrokerSpawnOptions {
  database?: string;
  dataDir?: string;
  deliveryWindowSeconds?: number;
  maxPending?: number;
  ratePerMinute?: number;
  listen?: string;
  extraArgs?: string[];
}

/** Starts `node dist/broker/main.js` on a free port and waits for its start log line. */
export async function spawnBroker(options: BrokerSpawnOptions = {}): Promise<BrokerProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'sv-broker-'));
  const args = ['dist/broker/main.js', '--listen', options.listen ?? '127.0.0.1:0', '--data', dataDir, '--sweep-interval-ms', '200', ...(options.extraArgs ?? [])];
  if (options.database !== undefined) args.push('--database', options.database);
  if (options.deliveryWindowSeconds !== undefined) args.push('--delivery-window', String(options.deliveryWindowSeconds));
  if (options.maxPending !== undefined) args.push('--max-pending', String(options.maxPending));
  if (options.ratePerMinute !== undefined) args.push('--rate-per-minute', String(options.ratePerMinute));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`broker did not start within 20 s:\n${stderr}`)); }, 20_000);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        const record = JSON.parse(line) as { event?: string; url?: string };
        if (record.event === 'start' && record.url !== undefined) {
          clearTimeout(timer);
          resolve(record.url);
        }
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`broker exited with ${String(code)}:\n${stderr}`)); });
  });
  return {
    url,
    dataDir,
    child,
    logs: () => stderr,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

// PostgreSQL -----------------------------------------------------------------

export async function postgresReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_BASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates a unique schema name for one test run; dropSchema removes it. */
export function uniqueSchema(): string {
  return `broker_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_BASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

// An org and its members -------------------------------------------------------

export interface Device {
  signing: SigningPrivateKey;
  sealing: SealingPrivateKey;
  cert: Signed<DeviceCertBody>;
  id: string;
}

export interface Consumer {
  host: SigningPrivateKey;
  cert: Signed<ConsumerCertBody>;
  id: string;
}

export interface Org {
  identity: SigningPrivateKey;
  trust: OrgTrust;
  object: Awaited<ReturnType<typeof createOrg>>;
}

export async function makeOrg(name = 'Acme'): Promise<Org> {
  const identity = await SigningPrivateKey.generate('org-identity');
  const object = await createOrg(identity, { name, created: now() });
  const { trust } = await verifyOrg(object, identity.publicKey.fingerprint());
  return { identity, trust, object };
}

export async function makeDeviceKeys(): Promise<{ signing: SigningPrivateKey; sealing: SealingPrivateKey }> {
  return { signing: await SigningPrivateKey.generate('device-signing'), sealing: await SealingPrivateKey.generate('device-sealing') };
}

export async function certifyDevice(org: Org, keys: { signing: SigningPrivateKey; sealing: SealingPrivateKey }, name: string, id = newId()): Promise<Device> {
  const cert = await issueDeviceCert(org.identity, {
    device: id, name, platform: 'terminal', signingKey: keys.signing.publicKey.toBase64Url(), sealingKey: keys.sealing.publicKey.toBase64Url(),
    issued: now() - 10, expires: now() + 86_400,
  });
  return { ...keys, cert, id };
}

export async function certifyConsumer(org: Org, host: SigningPrivateKey, name: string, id = newId()): Promise<Consumer> {
  const cert = await issueConsumerCert(org.identity, { consumer: id, name, hostKey: host.publicKey.toBase64Url(), issued: now() - 10, expires: now() + 86_400 });
  return { host, cert, id };
}

export async function makePolicy(org: Org, devices: Device[], consumers: Consumer[], version = 1, paths = ['prod/**']): Promise<Signed<PolicyBody>> {
  return signPolicy(org.identity, {
    name: 'prod', version, paths, approvers: devices.map((device) => device.id), quorum: 1, maxLeaseSeconds: 3600,
    consumers: consumers.map((consumer) => consumer.id), requesters: [{}], issued: now(),
  });
}

export async function makeSecret(org: Org, policy: Signed<PolicyBody>, devices: Device[], path: string, version: number, text: string): Promise<Signed<SecretBody>> {
  const verifiedPolicy = await verifyPolicy(policy, org.trust, { minVersion: 0 });
  const certs = await Promise.all(devices.map((device) => verifyDeviceCert(device.cert, org.trust, now())));
  return buildSecretVersion(org.identity, { policy: verifiedPolicy, devices: certs, path, version, created: now(), plaintext: SecretBytes.fromString(text) });
}

/** A registered org with `deviceCount` approvers, one consumer, a policy and one secret, each with an authenticated client. */
export interface World {
  org: Org;
  devices: Device[];
  consumer: Consumer;
  policy: Signed<PolicyBody>;
  secret: Signed<SecretBody>;
  admin: BrokerClient;
  deviceClients: BrokerClient[];
  consumerClient: BrokerClient;
}

export const SECRET_PATH = 'prod/db/url';

export async function makeWorld(url: string, options: { deviceCount?: number; secretText?: string } = {}): Promise<World> {
  const org = await makeOrg();
  const admin = new BrokerClient(url, org.trust.org);
  await admin.registerOrg(org.object);
  await admin.authenticate('admin', org.trust.org, org.identity);

  const devices: Device[] = [];
  for (let i = 0; i < (options.deviceCount ?? 2); i++) devices.push(await certifyDevice(org, await makeDeviceKeys(), `approver ${i}`));
  const consumer = await certifyConsumer(org, await SigningPrivateKey.generate('consumer-host'), 'build-01');
  for (const device of devices) await admin.putCertificate(device.cert);
  await admin.putCertificate(consumer.cert);
  const policy = await makePolicy(org, devices, [consumer]);
  await admin.putPolicy(policy);
  const secret = await makeSecret(org, policy, devices, SECRET_PATH, 1, options.secretText ?? 'not-a-real-secret');
  await admin.putSecret(secret);

  const deviceClients: BrokerClient[] = [];
  for (const device of devices) {
    const client = new BrokerClient(url, org.trust.org);
    await client.authenticate('device', device.id, device.signing);
    deviceClients.push(client);
  }
  const consumerClient = new BrokerClient(url, org.trust.org);
  await consumerClient.authenticate('consumer', consumer.id, consumer.host);
  return { org, devices, consumer, policy, secret, admin, deviceClients, consumerClient };
}

// Consumer and approver steps ---------------------------------------------------

export interface MadeRequest {
  signed: Signed<RequestBody>;
  ephemeral: SealingPrivateKey;
}

export async function makeRequest(world: World, overrides: Partial<RequestBody> = {}): Promise<MadeRequest> {
  const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
  const signed = await createRequest(world.consumer.host, {
    org: world.org.trust.org, id: newId(), consumer: world.consumer.id, host: 'build-01', paths: [SECRET_PATH],
    requester: { uid: 1001, gid: 1001, user: 'ci', pid: 4242, exe: '/usr/bin/node', cmdline: ['node', 'deploy.js'] },
    reason: 'deploy migration 42', leaseSeconds: 600, ephemeralKey: ephemeral.publicKey.toBase64Url(), created: now(), expires: now() + 300,
    auditHead: null, ...overrides,
  });
  return { signed, ephemeral };
}

/** Verifies a pushed bundle as an approver would, then approves (or denies) it with real HPKE re-sealing. */
export async function decide(world: World, device: Device, bundle: RequestBundle, decision: 'approve' | 'deny' = 'approve'): Promise<Signed<ApprovalBody>> {
  const trust = world.org.trust;
  const deviceCert = await verifyDeviceCert(device.cert, trust, now());
  const consumerCert = await verifyConsumerCert(bundle.consumerCert, trust, now());
  const request = await verifyRequest(bundle.request, trust, consumerCert, now());
  if (decision === 'deny') return denyRequest({ deviceKey: device.signing, device: device.id, request, created: now(), auditHead: null });
  const policy = await verifyPolicy(bundle.policy, trust, { minVersion: 0 });
  const secrets = await Promise.all(bundle.secrets.map((secret) => verifySecret(secret, trust, policy, { minVersion: 0 })));
  return approveRequest({ deviceKey: device.signing, sealingKey: device.sealing, deviceCert, request, secrets, leaseSeconds: 600, created: now(), auditHead: null });
}

/** Opens a released approval as the consumer daemon would and returns the plaintext of each path. */
export async function openRelease(world: World, made: MadeRequest, approval: Signed<ApprovalBody>, secrets: Signed<SecretBody>[]): Promise<Map<string, string>> {
  const trust = world.org.trust;
  const consumerCert = await verifyConsumerCert(world.consumer.cert, trust, now());
  const request = await verifyRequest(made.signed, trust, consumerCert, now());
  const device = world.devices.find((candidate) => candidate.id === approval.body.device);
  if (device === undefined) throw new Error(`approval from unknown device ${approval.body.device}`);
  const policy = await verifyPolicy(world.policy, trust, { minVersion: 0 });
  const verified = await verifyApproval(approval, { trust, request, deviceCert: await verifyDeviceCert(device.cert, trust, now()), policy, now: now() });
  const verifiedSecrets = new Map<string, Awaited<ReturnType<typeof verifySecret>>>();
  for (const secret of secrets) verifiedSecrets.set(secret.body.path, await verifySecret(secret, trust, policy, { minVersion: 0 }));
  const keys = await openApproval(verified, request, made.ephemeral, verifiedSecrets);
  const plaintexts = new Map<string, string>();
  for (const [path, key] of keys) {
    const secret = verifiedSecrets.get(path);
    if (secret === undefined) throw new Error(`no secret for ${path}`);
    const bytes = await decryptSecret(secret, key);
    plaintexts.set(path, bytes.exposeString());
    bytes.wipe();
    key.wipe();
  }
  return plaintexts;
}
