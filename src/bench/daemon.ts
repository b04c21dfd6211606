import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrokerClient } from '../broker/client.js';
import {
  approveRequest, buildSecretVersion, createOrg, issueConsumerCert, issueDeviceCert, newId, SealingPrivateKey, SecretBytes, signPolicy,
  SigningPrivateKey, toBase64Url, verifyConsumerCert, verifyDeviceCert, verifyOrg, verifyPolicy, verifyRequest, verifySecret,
} from '../protocol/index.js';

/**
 * Cost of the daemon's lease-hit path. One broker process, one daemon
 * process and a simulated approver are started. This process requests once so a
 * lease exists, then measures:
 * - lease-hit POST /v1/secrets from one long-lived client (keep-alive
 *   connection), next to a bare Unix-socket echo round trip to another
 *   process, measured in the same run;
 * - `stillvault get` as a whole process (served from the same lease, since
 *   it runs the same node executable as this process) next to `node -e ''`.
 */

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(DIST, 'cli', 'main.js');
const SECRET_PATH = 'bench/db/url';
const HIT_DURATION_MS = 3000;
const PROCESS_RUNS = 15;

function now(): number {
  return Math.floor(Date.now() / 1000);
}

export async function runDaemonBench(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'sv-bench-daemon-'));
  const children: ChildProcess[] = [];
  try {
    const brokerUrl = await startProcess(children, [join(DIST, 'broker', 'main.js'), '--listen', '127.0.0.1:0', '--data', join(scratch, 'broker')], /"event":"start".*?"url":"([^"]+)"/);
    const { home, stopApprover } = await makeOrg(brokerUrl, scratch);
    const socketPath = join(scratch, 'run', 'daemon.sock');
    await startProcess(children, [CLI, 'daemon', '--socket', socketPath], /"event":"start"/, { ...process.env, STILLVAULT_HOME: home });

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await postSecrets(agent, socketPath, 3600);
    await stopApprover();

    const hits = await measureLoop(HIT_DURATION_MS, () => postSecrets(agent, socketPath));
    agent.destroy();
    const echo = await measureEcho(scratch, children);
    const get = measureProcess([CLI, 'get', SECRET_PATH, '--socket', socketPath], PROCESS_RUNS);
    const bare = measureProcess(['-e', ''], PROCESS_RUNS);

    const rows = [
      ['lease hit (POST /v1/secrets, keep-alive)', hits],
      ['bare Unix-socket echo round trip', echo],
    ] as const;
    process.stdout.write('\ndaemon: lease-hit path (one client, sequential)\n');
    process.stdout.write(`${'measure'.padEnd(44)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}\n`);
    for (const [name, stats] of rows) {
      process.stdout.write(`${name.padEnd(44)} ${stats.rate.toFixed(0).padStart(8)} ${stats.p50.toFixed(3).padStart(8)} ${stats.p99.toFixed(3).padStart(8)}\n`);
    }
    process.stdout.write(`lease hit / echo latency ratio (p50): ${(hits.p50 / echo.p50).toFixed(1)}x\n`);
    process.stdout.write(`\n${'process'.padEnd(44)} ${'p50 ms'.padStart(8)} ${'max ms'.padStart(8)}\n`);
    process.stdout.write(`${'stillvault get (lease hit)'.padEnd(44)} ${get.p50.toFixed(1).padStart(8)} ${get.max.toFixed(1).padStart(8)}\n`);
    process.stdout.write(`${"node -e ''".padEnd(44)} ${bare.p50.toFixed(1).padStart(8)} ${bare.max.toFixed(1).padStart(8)}\n`);
    process.stdout.write(`stillvault get / node -e '' ratio (p50): ${(get.p50 / bare.p50).toFixed(2)}x\n`);
  } finally {
    for (const child of children) child.kill('SIGTERM');
    const running = children.filter((child) => child.exitCode === null && child.signalCode === null);
    await Promise.all(running.map((child) => new Promise((resolve) => child.once('exit', resolve))));
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Starts a node process and resolves with the first capture group of `ready` in its stderr (or '' without one). */
function startProcess(children: ChildProcess[], args: string[], ready: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  children.push(child);
  let stderr = '';
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      const match = ready.exec(stderr);
      if (match !== null) resolve(match[1] ?? '');
    });
    child.once('exit', (code) => { reject(new Error(`${args[0] ?? 'process'} exited with ${String(code)}: ${stderr.slice(-2000)}`)); });
  });
}

/** Builds an org with one approver, one consumer and one secret, writes the daemon's state and starts an approving device. */
async function makeOrg(url: string, scratch: string): Promise<{ home: string; stopApprover: () => Promise<void> }> {
  const identity = await SigningPrivateKey.generate('org-identity');
  const orgObject = await createOrg(identity, { name: 'Bench', created: now() });
  const { trust } = await verifyOrg(orgObject, identity.publicKey.fingerprint());
  const admin = new BrokerClient(url, trust.org);
  await admin.registerOrg(orgObject);
  await admin.authenticate('admin', trust.org, identity);

  const deviceSigning = await SigningPrivateKey.generate('device-signing');
  const deviceSealing = await SealingPrivateKey.generate('device-sealing');
  const deviceId = newId();
  const deviceCert = await issueDeviceCert(identity, {
    device: deviceId, name: 'bench approver', platform: 'terminal', signingKey: deviceSigning.publicKey.toBase64Url(),
    sealingKey: deviceSealing.publicKey.toBase64Url(), issued: now() - 10, expires: now() + 86_400,
  });
  const hostKey = await SigningPrivateKey.generate('consumer-host');
  const consumerId = newId();
  const consumerCert = await issueConsumerCert(identity, { consumer: consumerId, name: 'bench-host', hostKey: hostKey.publicKey.toBase64Url(), issued: now() - 10, expires: now() + 86_400 });
  await admin.putCertificate(deviceCert);
  await admin.putCertificate(consumerCert);
  const policy = await signPolicy(identity, {
    name: 'bench', version: 1, paths: ['bench/**'], approvers: [deviceId], quorum: 1, maxLeaseSeconds: 3600, consumers: [consumerId], requesters: [{}], issued: now(),
  });
  await admin.putPolicy(policy);
  const verifiedPolicy = await verifyPolicy(policy, trust, { minVersion: 0 });
  const verifiedDevice = await verifyDeviceCert(deviceCert, trust, now());
  await admin.putSecret(await buildSecretVersion(identity, {
    policy: verifiedPolicy, devices: [verifiedDevice], path: SECRET_PATH, version: 1, created: now(), plaintext: SecretBytes.fromString('postgres://bench'),
  }));

  const home = join(scratch, 'home');
  mkdirSync(join(home, 'daemon'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'daemon', 'consumer.json'), JSON.stringify({
    v: 1, org: trust.org, orgName: 'Bench', identityKey: identity.publicKey.toBase64Url(), broker: url, consumer: consumerId, name: 'bench-host', enrollment: null, certificate: consumerCert,
  }), { mode: 0o600 });
  const seed = hostKey.exportSeed();
  writeFileSync(join(home, 'daemon', 'host-key.json'), JSON.stringify({ v: 1, kind: 'stillvault-host-key', seed: toBase64Url(seed) }), { mode: 0o600 });
  seed.fill(0);

  const device = new BrokerClient(url, trust.org);
  await device.authenticate('device', deviceId, deviceSigning);
  const stream = await device.connect();
  const loop = (async () => {
    for await (const event of stream) {
      if (event.type !== 'request') continue;
      stream.ack(event.request);
      const consumer = await verifyConsumerCert(event.bundle.consumerCert, trust, now());
      const request = await verifyRequest(event.bundle.request, trust, consumer, now());
      const secrets = await Promise.all(event.bundle.secrets.map((secret) => verifySecret(secret, trust, verifiedPolicy, { minVersion: 0 })));
      const approval = await approveRequest({
        deviceKey: deviceSigning, sealingKey: deviceSealing, deviceCert: verifiedDevice, request, secrets, leaseSeconds: request.body.leaseSeconds, created: now(), auditHead: null,
      });
      await device.submitApproval(event.request, approval);
    }
  })();
  return { home, stopApprover: async () => { await stream.close(); await loop; } };
}

function postSecrets(agent: http.Agent, socketPath: string, leaseSeconds?: number): Promise<void> {
  const body = JSON.stringify({ paths: [SECRET_PATH], reason: 'benchmark', ...(leaseSeconds === undefined ? {} : { leaseSeconds }) });
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath, agent, method: 'POST', path: '/v1/secrets', headers: { host: 'stillvault', 'content-length': Buffer.byteLength(body) } }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
      response.on('end', () => {
        if (text.includes('"type":"result"')) resolve();
        else reject(new Error(`daemon did not return a result: ${text.slice(0, 300)}`));
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}

interface LoopStats {
  rate: number;
  p50: number;
  p99: number;
}

async function measureLoop(durationMs: number, operation: () => Promise<void>): Promise<LoopStats> {
  for (let i = 0; i < 200; i++) await operation();
  const latencies: number[] = [];
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    const begin = performance.now();
    await operation();
    latencies.push(performance.now() - begin);
  }
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / (elapsed / 1000), p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

/** Measures round trips of 64 bytes to an echo server in another node process, over one Unix socket connection. */
async function measureEcho(scratch: string, children: ChildProcess[]): Promise<LoopStats> {
  const path = join(scratch, 'echo.sock');
  const script = `require('net').createServer((s) => s.pipe(s)).listen(${JSON.stringify(path)}, () => process.stderr.write('ready\\n'));`;
  await startProcess(children, ['-e', script], /ready/);
  const socket = net.connect(path);
  await new Promise((resolve) => socket.once('connect', resolve));
  const message = Buffer.alloc(64, 0x61);
  const roundTrip = () => new Promise<void>((resolve) => {
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received >= message.length) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.write(message);
  });
  try {
    return await measureLoop(HIT_DURATION_MS, roundTrip);
  } finally {
    socket.destroy();
  }
}

function measureProcess(args: string[], runs: number): { p50: number; max: number } {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${String(result.status)}: ${result.stderr.toString('utf8').slice(0, 500)}`);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), max: times.at(-1) ?? 0 };
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? 0;
}
