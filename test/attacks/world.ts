// The world an attack test runs in, built with real processes in temp
// directories: a broker process and a relay in front of it, an admin,
// terminal approvers, a daemon host with a running daemon, one policy and one
// secret whose value is a random canary. Every party was enrolled with the
// relay's URL, so the relay plays a malicious broker.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BrokerClient } from '../../src/broker/client.js';
import { unlockDeviceKeys, type DeviceKeys } from '../../src/approver/keys.js';
import type { ApproverState, DaemonState } from '../../src/local/state.js';
import { SigningPublicKey, type OrgTrust } from '../../src/protocol/index.js';
import { startRelay, type Relay } from './relay.js';

export const REPO = new URL('../../', import.meta.url).pathname;
export const CLI = join(REPO, 'dist/cli/main.js');
export const PASSPHRASE = 'attack suite passphrase';
export const POLICY = 'attack';
export const SECRET_PATH = 'attack/canary';

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

export function canaryValue(): string {
  return `canary-${randomBytes(16).toString('hex')}`;
}

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running process with its output collected as it arrives. */
export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  done: Promise<Output>;
  /** Resolves when stderr contains `text`; rejects after `timeoutMs` or when the process exits first. */
  waitForStderr(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `command args` and collects its output. */
export function start(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Running {
  const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd ?? REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    for (const listener of listeners) listener();
  });
  child.stdin.end(options.input ?? '');
  const done = new Promise<Output>((resolve) => {
    child.once('close', (code, signal) => { resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr }); });
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitForStderr(text, timeoutMs = 30_000) {
      const matches = (): boolean => (typeof text === 'string' ? stderr.includes(text) : text.test(stderr));
      return new Promise<void>((resolve, reject) => {
        const finish = (error?: Error): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve();
        };
        const check = (): void => { if (matches()) finish(); };
        const timer = setTimeout(() => { finish(new Error(`no ${String(text)} on stderr after ${timeoutMs} ms:\n${stderr}`)); }, timeoutMs);
        listeners.add(check);
        void done.then(() => { if (!matches()) finish(new Error(`process exited before ${String(text)} appeared on stderr:\n${stderr}`)); });
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.kill('SIGTERM');
      await done;
      clearTimeout(killer);
    },
  };
}

export interface BrokerProcess extends Running {
  url: string;
  dataDir: string;
  /** Directory where `--heapsnapshot-signal` writes its .heapsnapshot files. */
  diagnosticDir: string;
}

/** Starts `node dist/broker/main.js` on a free port, with SIGUSR2 writing a heap snapshot. */
export async function spawnBroker(dir: string): Promise<BrokerProcess> {
  const dataDir = join(dir, 'broker');
  const diagnosticDir = join(dir, 'broker-diagnostics');
  mkdirSync(diagnosticDir, { recursive: true });
  const running = start(process.execPath, [
    '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${diagnosticDir}`, join(REPO, 'dist/broker/main.js'),
    '--listen', '127.0.0.1:0', '--data', dataDir, '--sweep-interval-ms', '200', '--delivery-window', '120',
  ]);
  await running.waitForStderr(/"event":"start"[^\n]*"url":"[^"]+"/, 20_000);
  const url = /"event":"start"[^\n]*"url":"([^"]+)"/.exec(running.stderr())?.[1] ?? '';
  return { ...running, url, dataDir, diagnosticDir };
}

export interface WorldOptions {
  approvers?: string[];
  /** Seconds an approver has to decide before the daemon gives up (its --request-timeout). */
  requestTimeout?: number;
}

export interface World {
  dir: string;
  broker: BrokerProcess;
  relay: Relay;
  admin: string;
  approvers: Record<string, string>;
  host: string;
  socketPath: string;
  daemon: Running;
  canary: string;
  trust: OrgTrust;
  /** Environment for a CLI process of the party whose home is `home`. */
  env(home: string): NodeJS.ProcessEnv;
  cli(home: string, args: string[], input?: string): Promise<Output>;
  cliOk(home: string, args: string[], input?: string): Promise<string>;
  /** Starts an agent on the daemon host: `stillvault ARGS`, optionally run by another node executable. */
  agent(args: string[], options?: { node?: string }): Running;
  /** Runs `stillvault approve --format json` as approver `name`, feeding `answers` one per line. */
  approve(name: string, answers: string[]): Promise<Output & { outcomes: ApproveOutcome[] }>;
  /** The approver's device keys, unlocked with the suite's passphrase. The caller wipes them. */
  deviceKeys(name: string): Promise<DeviceKeys>;
  approverState(name: string): ApproverState;
  daemonState(): DaemonState;
  /** Authenticates to the real broker (not the relay) as approver `name`. */
  deviceClient(name: string): Promise<BrokerClient>;
  /** Every cell of every table of the broker's SQLite database, as text. */
  databaseText(): string;
  restartDaemon(): Promise<void>;
  stop(): Promise<void>;
}

export interface ApproveOutcome {
  request: string;
  result: string;
  code?: string;
  message?: string;
}

function parseOutcomes(stdout: string): ApproveOutcome[] {
  return stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as ApproveOutcome);
}

function pendingEnrollmentId(listJson: string, name: string): string {
  const found = (JSON.parse(listJson) as { id: string; name: string }[]).find((item) => item.name === name);
  if (found === undefined) throw new Error(`no pending enrollment for ${name} in ${listJson}`);
  return found.id;
}

/**
 * Builds the world: broker, relay, `init --broker RELAY_URL`, approvers,
 * daemon host, policy `attack` over `attack/**` with every approver, the
 * secret attack/canary, and a running daemon.
 */
export async function makeWorld(options: WorldOptions = {}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'sv-attack-'));
  const broker = await spawnBroker(dir);
  const relay = await startRelay(broker.url);
  const runDirectory = join(dir, 'run');
  mkdirSync(runDirectory, { mode: 0o700 });
  const socketPath = join(runDirectory, 'daemon.sock');

  const env = (home: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? '', STILLVAULT_HOME: home, STILLVAULT_PASSPHRASE: PASSPHRASE, STILLVAULT_SOCKET: socketPath,
  });
  const cli = (home: string, args: string[], input = ''): Promise<Output> => start(process.execPath, [CLI, ...args], { env: env(home), input }).done;
  const cliOk = async (home: string, args: string[], input = ''): Promise<string> => {
    const result = await cli(home, args, input);
    if (result.code !== 0) throw new Error(`stillvault ${args.join(' ')} exited ${result.code}:\n${result.stderr}`);
    return result.stdout;
  };

  const admin = join(dir, 'admin');
  await cliOk(admin, ['init', '--org', 'Attack', '--broker', relay.url]);

  const approvers: Record<string, string> = {};
  for (const name of options.approvers ?? ['alice']) {
    const home = join(dir, `approver-${name}`);
    const token = (await cliOk(admin, ['approver', 'invite', name])).trim();
    await cliOk(home, ['approver', 'enroll', '--invite', token]);
    await cliOk(admin, ['enrollments', 'approve', pendingEnrollmentId(await cliOk(admin, ['enrollments', 'list', '--format', 'json']), name), '--yes']);
    await cliOk(home, ['approver', 'status', '--wait', '--timeout', '20s']);
    approvers[name] = home;
  }

  const host = join(dir, 'host');
  const hostToken = (await cliOk(admin, ['daemon', 'invite', 'agent-host'])).trim();
  await cliOk(host, ['daemon', 'enroll', '--invite', hostToken]);
  await cliOk(admin, ['enrollments', 'approve', pendingEnrollmentId(await cliOk(admin, ['enrollments', 'list', '--format', 'json']), 'agent-host'), '--yes']);
  await cliOk(host, ['daemon', 'enroll', '--wait', '--timeout', '20s']);

  await cliOk(admin, ['policy', 'set', POLICY, '--paths', 'attack/**', '--approvers', Object.keys(approvers).join(','), '--max-lease', '5m', '--consumers', 'agent-host']);
  const canary = canaryValue();
  await cliOk(admin, ['secret', 'set', SECRET_PATH, '--policy', POLICY], canary);

  const daemonArgs = [CLI, 'daemon', '--socket', socketPath, '--request-timeout', String(options.requestTimeout ?? 60)];
  const startDaemon = async (): Promise<Running> => {
    const running = start(process.execPath, daemonArgs, { env: env(host) });
    await running.waitForStderr('"event":"broker-connected"', 20_000);
    return running;
  };
  let daemon = await startDaemon();

  const approverState = (name: string): ApproverState => JSON.parse(readFileSync(join(approvers[name] ?? '', 'approver', 'device.json'), 'utf8')) as ApproverState;
  const daemonState = (): DaemonState => JSON.parse(readFileSync(join(host, 'daemon', 'consumer.json'), 'utf8')) as DaemonState;
  const state = daemonState();
  const deviceKeys = (name: string): Promise<DeviceKeys> => unlockDeviceKeys(join(approvers[name] ?? '', 'approver', 'device.key'), PASSPHRASE);

  const world: World = {
    dir,
    broker,
    relay,
    admin,
    approvers,
    host,
    socketPath,
    get daemon() { return daemon; },
    canary,
    trust: { org: state.org, identityKey: SigningPublicKey.fromBase64Url(state.identityKey) },
    env,
    cli,
    cliOk,
    agent(args, agentOptions = {}) {
      return start(agentOptions.node ?? process.execPath, [CLI, ...args], { env: env(host) });
    },
    async approve(name, answers) {
      const home = approvers[name];
      if (home === undefined) throw new Error(`no approver ${name}`);
      const result = await cli(home, ['approve', '--format', 'json'], answers.map((answer) => `${answer}\n`).join(''));
      return { ...result, outcomes: parseOutcomes(result.stdout) };
    },
    deviceKeys,
    approverState,
    daemonState,
    async deviceClient(name) {
      const client = new BrokerClient(broker.url, state.org);
      const keys = await deviceKeys(name);
      try {
        await client.authenticate('device', approverState(name).device, keys.signing);
      } finally {
        keys.wipe();
      }
      return client;
    },
    databaseText() {
      const db = new Database(join(broker.dataDir, 'broker.sqlite'), { readonly: true, fileMustExist: true });
      try {
        const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
        const cells: string[] = [];
        for (const { name } of tables) {
          for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[]) {
            for (const value of Object.values(row)) cells.push(Buffer.isBuffer(value) ? value.toString('latin1') : String(value));
          }
        }
        return cells.join('\n');
      } finally {
        db.close();
      }
    },
    async restartDaemon() {
      await daemon.stop();
      daemon = await startDaemon();
    },
    async stop() {
      await daemon.stop();
      await relay.close();
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return world;
}

/** Returns `value`, or fails the test naming `what` when it is undefined. */
export function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} is missing`);
  return value;
}

/** Returns the request id an agent's progress line names (`request ID sent to N approvers`). */
export function requestIdIn(stderr: string): string {
  const id = /request (\S+) sent to/.exec(stderr)?.[1];
  if (id === undefined) throw new Error(`no request id in the agent's stderr:\n${stderr}`);
  return id;
}

/** Parses the daemon's JSON log lines. */
export function logEvents(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Returns the logged `request-failed` events of one request. */
export function failuresOf(world: World, request: string): Record<string, unknown>[] {
  return logEvents(world.daemon.stderr()).filter((event) => event.event === 'request-failed' && event.request === request);
}

/** Starts `stillvault get attack/canary`. A test that lets it succeed ends the lease with revokeLease. */
export function getCanary(world: World, reason: string): Running {
  return world.agent(['get', SECRET_PATH, '--lease', '60', '--reason', reason]);
}

/** Ends a lease through the daemon's socket API (DELETE /v1/leases/ID), so later requests are not served from it. */
export function revokeLease(world: World, id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath: world.socketPath, method: 'DELETE', path: `/v1/leases/${id}`, headers: { host: 'stillvault' } }, (response) => {
      response.resume();
      response.once('end', () => { resolve(response.statusCode ?? 0); });
    });
    request.once('error', reject);
    request.end();
  });
}

/** Starts an agent and resolves once its request is waiting, with the request id. */
export async function startRequest(world: World, reason: string): Promise<{ agent: Running; request: string }> {
  const agent = getCanary(world, reason);
  await agent.waitForStderr('waiting for a decision');
  return { agent, request: requestIdIn(agent.stderr()) };
}

/** Denies whatever is pending at the broker as approver `name`, with the relay passing everything through. */
export async function denyPending(world: World, name: string): Promise<void> {
  const hooks = world.relay.hooks;
  world.relay.hooks = {};
  try {
    await world.approve(name, ['n', 'n', 'n', 'n']);
  } finally {
    world.relay.hooks = hooks;
  }
}

/** Returns the recorded bodies of one kind of call or message, newest last. */
export function recordedBodies(world: World, match: (entry: Relay['recorded'][number]) => boolean): unknown[] {
  return world.relay.recorded.filter(match).map((entry) => entry.body);
}
