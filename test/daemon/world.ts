// A real broker process, an org built through its HTTP API, a daemon state
// directory for the org's consumer, a real daemon process, and a simulated
// approver that decides with the protocol's own functions over the broker's
// WebSocket.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrokerClient, BrokerEventStream, RequestBundle } from '../../src/broker/client.js';
import {
  approveRequest, denyRequest, toBase64Url, verifyConsumerCert, verifyDeviceCert, verifyPolicy, verifyRequest, verifySecret,
  type RequestBody, type Signed,
} from '../../src/protocol/index.js';
import { makeSecret, makeWorld, now, spawnBroker, type BrokerProcess, type Device, type World } from '../broker/fixtures.js';

export const REPO = new URL('../../', import.meta.url).pathname;
export const CLI = join(REPO, 'dist/cli/main.js');

export interface DaemonWorld extends World {
  broker: BrokerProcess;
  home: string;
  socketPath: string;
}

/** Starts a broker, builds an org with the given extra secrets and writes the daemon's state for its consumer. */
export async function makeDaemonWorld(secrets: Record<string, string>, options: { deliveryWindowSeconds?: number } = {}): Promise<DaemonWorld> {
  const broker = await spawnBroker(options);
  const world = await makeWorld(broker.url, { deviceCount: 1 });
  for (const [path, text] of Object.entries(secrets)) {
    await world.admin.putSecret(await makeSecret(world.org, world.policy, world.devices, path, 1, text));
  }

  const home = mkdtempSync(join(tmpdir(), 'sv-home-'));
  const daemonDir = join(home, 'daemon');
  mkdirSync(daemonDir, { mode: 0o700 });
  writeFileSync(join(daemonDir, 'consumer.json'), JSON.stringify({
    v: 1, org: world.org.trust.org, orgName: 'Acme', identityKey: world.org.identity.publicKey.toBase64Url(), broker: broker.url,
    consumer: world.consumer.id, name: 'build-01', enrollment: null, certificate: world.consumer.cert,
  }), { mode: 0o600 });
  const seed = world.consumer.host.exportSeed();
  writeFileSync(join(daemonDir, 'host-key.json'), JSON.stringify({ v: 1, kind: 'stillvault-host-key', seed: toBase64Url(seed) }), { mode: 0o600 });
  seed.fill(0);
  // The parent stays traversable so a test user in the socket's group can reach it; the daemon makes sock/ itself.
  const runDirectory = mkdtempSync(join(tmpdir(), 'sv-run-'));
  chmodSync(runDirectory, 0o755);
  const socketPath = join(runDirectory, 'sock', 'daemon.sock');
  return { ...world, broker, home, socketPath };
}

export interface DaemonProcess {
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/** Starts `stillvault daemon` and waits for its `start` log line. */
export async function spawnDaemon(world: DaemonWorld, extraArgs: string[] = []): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [CLI, 'daemon', '--socket', world.socketPath, ...extraArgs], {
    env: { ...process.env, STILLVAULT_HOME: world.home },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`daemon did not start within 20 s:\n${stderr}`)); }, 20_000);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      if (/"event":"start"/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`daemon exited with ${String(code)}:\n${stderr}`)); });
  });
  return {
    child,
    logs: () => stderr,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve(); }));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the built CLI as a separate process (optionally through another executable or a wrapper such as setpriv). */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; node?: string; wrapper?: string[]; cwd?: string } = {}): Promise<CliResult> & { child: ChildProcess } {
  const node = options.node ?? process.execPath;
  const wrapper = options.wrapper ?? [];
  const command = wrapper[0] ?? node;
  const commandArgs = wrapper.length > 0 ? [...wrapper.slice(1), node, CLI, ...args] : [CLI, ...args];
  const child = spawn(command, commandArgs, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd ?? REPO });
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  const done = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => { resolve({ code, signal, stdout: Buffer.concat(stdout), stderr }); });
  });
  return Object.assign(done, { child });
}

export type Decision = 'approve' | 'deny' | 'ignore';

/**
 * An approver device on the broker's WebSocket: acknowledges every pushed
 * request, records it, and approves, denies or ignores it as `decision` sets.
 */
export class Approver {
  decision: Decision = 'approve';
  readonly requests: Signed<RequestBody>[] = [];
  readonly bundles: RequestBundle[] = [];
  readonly #world: World;
  readonly #device: Device;
  readonly #client: BrokerClient;
  #stream: BrokerEventStream | undefined;
  #loop: Promise<void> | undefined;

  constructor(world: World, index = 0) {
    this.#world = world;
    this.#device = defined(world.devices[index], `device ${index}`);
    this.#client = defined(world.deviceClients[index], `device client ${index}`);
  }

  async start(): Promise<void> {
    this.#stream = await this.#client.connect();
    const stream = this.#stream;
    this.#loop = (async () => {
      for await (const event of stream) {
        if (event.type !== 'request') continue;
        stream.ack(event.request);
        this.requests.push(event.bundle.request);
        this.bundles.push(event.bundle);
        if (this.decision === 'ignore') continue;
        const approval = await this.decide(event.bundle, this.decision);
        await this.#client.submitApproval(event.request, approval).catch(() => undefined);
      }
    })();
  }

  async stop(): Promise<void> {
    await this.#stream?.close();
    await this.#loop;
  }

  /** Signs a decision on `bundle` as this approver's device would, without sending it. */
  async decide(bundle: RequestBundle, decision: 'approve' | 'deny') {
    const trust = this.#world.org.trust;
    const deviceCert = await verifyDeviceCert(this.#device.cert, trust, now());
    const consumerCert = await verifyConsumerCert(bundle.consumerCert, trust, now());
    const request = await verifyRequest(bundle.request, trust, consumerCert, now());
    if (decision === 'deny') return denyRequest({ deviceKey: this.#device.signing, device: this.#device.id, request, created: now(), auditHead: null });
    const policy = await verifyPolicy(bundle.policy, trust, { minVersion: 0 });
    const secrets = await Promise.all(bundle.secrets.map((secret) => verifySecret(secret, trust, policy, { minVersion: 0 })));
    const leaseSeconds = Math.min(request.body.leaseSeconds, policy.body.maxLeaseSeconds);
    return approveRequest({
      deviceKey: this.#device.signing, sealingKey: this.#device.sealing, deviceCert, request, secrets, leaseSeconds, created: now(), auditHead: null,
    });
  }
}

/** Returns `value`, or throws naming `what` when it is undefined. */
export function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is undefined`);
  return value;
}

export function daemonEnv(world: DaemonWorld): NodeJS.ProcessEnv {
  return { ...process.env, STILLVAULT_HOME: world.home, STILLVAULT_SOCKET: world.socketPath };
}
