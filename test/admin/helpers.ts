// End-to-end helpers for the admin CLI and the terminal approver: a real
// broker process, real `node dist/cli/main.js` processes with their own
// STILLVAULT_HOME, and a consumer simulated with the protocol's own code and
// the host key `stillvault daemon enroll` wrote.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnBroker as spawnBrokerProcess, type BrokerProcess } from '../broker/fixtures.js';
import { BrokerClient } from '../../src/broker/client.js';
import { loadHostKey, type DaemonState } from '../../src/local/state.js';
import {
  createRequest, decryptSecret, newId, openApproval, SealingPrivateKey, SigningPublicKey, verifyApproval, verifyConsumerCert, verifyDeviceCert,
  verifyPolicy, verifyRequest, verifySecret,
  type OrgTrust, type RequestBody, type Signed,
} from '../../src/protocol/index.js';

export const PASSPHRASE = 'correct horse battery staple';
const CLI = join(process.cwd(), 'dist/cli/main.js');

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

export function tempHome(label: string): string {
  return mkdtempSync(join(tmpdir(), `sv-${label}-`));
}

export type { BrokerProcess };

/** Starts `node dist/broker/main.js` on a free port (or `listen`) and waits for its start log line. */
export function spawnBroker(dataDir = tempHome('broker'), listen = '127.0.0.1:0'): Promise<BrokerProcess> {
  return spawnBrokerProcess({ dataDir, listen });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI with its own home; `input` is piped to stdin (stdin is never a TTY here). */
export function cli(home: string, args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', STILLVAULT_HOME: home, STILLVAULT_PASSPHRASE: PASSPHRASE, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  child.stdin.end(options.input ?? '');
  return new Promise((resolve) => {
    child.once('close', (code) => { resolve({ code: code ?? -1, stdout, stderr }); });
  });
}

/** Runs the CLI and fails the test with its stderr unless it exits 0. */
export async function cliOk(home: string, args: string[], options: { input?: string } = {}): Promise<string> {
  const result = await cli(home, args, options);
  if (result.code !== 0) throw new Error(`stillvault ${args.join(' ')} exited ${result.code}:\n${result.stderr}`);
  return result.stdout;
}

function pendingEnrollmentId(listJson: string, name: string): string {
  const list = JSON.parse(listJson) as { id: string; name: string }[];
  const found = list.find((item) => item.name === name);
  if (found === undefined) throw new Error(`no pending enrollment for ${name} in ${listJson}`);
  return found.id;
}

export interface World {
  broker: BrokerProcess;
  admin: string;
  approvers: Record<string, string>;
  daemon: string;
  trust: OrgTrust;
}

/** init, one approver per name (invite, enroll, approve, status --wait), one daemon, policy `prod`, and prod/db-primary. */
export async function makeWorld(options: { approvers?: string[]; secret?: string } = {}): Promise<World> {
  const broker = await spawnBroker();
  const admin = tempHome('admin');
  await cliOk(admin, ['init', '--org', 'Acme', '--broker', broker.url]);

  const approvers: Record<string, string> = {};
  for (const name of options.approvers ?? ['ben']) {
    const home = tempHome(`approver-${name}`);
    const token = (await cliOk(admin, ['approver', 'invite', name])).trim();
    await cliOk(home, ['approver', 'enroll', '--invite', token]);
    const id = pendingEnrollmentId(await cliOk(admin, ['enrollments', 'list', '--format', 'json']), name);
    await cliOk(admin, ['enrollments', 'approve', id, '--yes']);
    await cliOk(home, ['approver', 'status', '--wait', '--timeout', '20s']);
    approvers[name] = home;
  }

  const daemon = tempHome('daemon');
  const daemonToken = (await cliOk(admin, ['daemon', 'invite', 'build-01'])).trim();
  await cliOk(daemon, ['daemon', 'enroll', '--invite', daemonToken]);
  const daemonEnrollment = pendingEnrollmentId(await cliOk(admin, ['enrollments', 'list', '--format', 'json']), 'build-01');
  await cliOk(admin, ['enrollments', 'approve', daemonEnrollment, '--yes']);
  await cliOk(daemon, ['daemon', 'enroll', '--wait', '--timeout', '20s']);

  await cliOk(admin, ['policy', 'set', 'prod', '--paths', 'prod/**', '--approvers', Object.keys(approvers).join(','), '--max-lease', '15m']);
  await cliOk(admin, ['secret', 'set', 'prod/db-primary'], { input: options.secret ?? 'postgres://app:s3cret@db/prod' });

  const state = daemonState(daemon);
  return { broker, admin, approvers, daemon, trust: { org: state.org, identityKey: SigningPublicKey.fromBase64Url(state.identityKey) } };
}

export function daemonState(home: string): DaemonState {
  return JSON.parse(readFileSync(join(home, 'daemon', 'consumer.json'), 'utf8')) as DaemonState;
}

export interface Consumer {
  client: BrokerClient;
  state: DaemonState;
  hostKey: Awaited<ReturnType<typeof loadHostKey>>;
}

/** Authenticates as the enrolled daemon with the host key `daemon enroll` wrote. */
export async function consumerFor(world: World): Promise<Consumer> {
  const state = daemonState(world.daemon);
  const hostKey = await loadHostKey(join(world.daemon, 'daemon', 'host-key.json'));
  const client = new BrokerClient(state.broker, state.org);
  await client.authenticate('consumer', state.consumer, hostKey);
  return { client, state, hostKey };
}

export interface MadeRequest {
  signed: Signed<RequestBody>;
  ephemeral: SealingPrivateKey;
}

/** Signs a request as the daemon would; `overrides` replace body members. */
export async function makeRequest(consumer: Consumer, overrides: Partial<RequestBody> = {}): Promise<MadeRequest> {
  const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
  const signed = await createRequest(consumer.hostKey, {
    org: consumer.state.org, id: newId(), consumer: consumer.state.consumer, host: 'build-01', paths: ['prod/db-primary'],
    requester: { uid: 1001, gid: 1001, user: 'agent', pid: 4242, exe: '/usr/bin/claude', cmdline: ['claude', '--task', 'migrate'] },
    reason: 'run the schema migration for ticket 42', leaseSeconds: 600, ephemeralKey: ephemeral.publicKey.toBase64Url(),
    created: now(), expires: now() + 300, auditHead: null, ...overrides,
  });
  return { signed, ephemeral };
}

/** Verifies the released approval as the daemon would and returns the plaintext of each path. */
export async function openReleased(world: World, consumer: Consumer, made: MadeRequest): Promise<Map<string, string>> {
  const status = await consumer.client.getRequest(made.signed.body.id);
  if (status.state !== 'released' || status.approval === null || status.secrets === null) throw new Error(`request is ${status.state}`);
  const trust = world.trust;
  const { devices } = await consumer.client.listCertificates();
  const deviceCert = devices.find((cert) => cert.body.device === status.approval?.body.device);
  if (deviceCert === undefined) throw new Error('approving device has no certificate');
  const policies = await consumer.client.listPolicies();
  const policy = await verifyPolicy(policies.find((item) => item.body.name === 'prod'), trust, { minVersion: 0 });
  const consumerCert = await verifyConsumerCert(consumer.state.certificate, trust, now());
  const request = await verifyRequest(made.signed, trust, consumerCert, now());
  const approval = await verifyApproval(status.approval, { trust, request, deviceCert: await verifyDeviceCert(deviceCert, trust, now()), policy, now: now() });
  const secrets = new Map<string, Awaited<ReturnType<typeof verifySecret>>>();
  for (const secret of status.secrets) secrets.set(secret.body.path, await verifySecret(secret, trust, policy, { minVersion: 0 }));
  const keys = await openApproval(approval, request, made.ephemeral, secrets);
  const plaintexts = new Map<string, string>();
  for (const [path, key] of keys) {
    const secret = secrets.get(path);
    if (secret === undefined) throw new Error(`no secret for ${path}`);
    const bytes = await decryptSecret(secret, key);
    plaintexts.set(path, bytes.exposeString());
    bytes.wipe();
    key.wipe();
  }
  return plaintexts;
}
