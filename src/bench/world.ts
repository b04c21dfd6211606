import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrokerClient } from '../broker/client.js';
import {
  buildSecretVersion, createOrg, issueConsumerCert, issueDeviceCert, newId, SealingPrivateKey, SecretBytes, signPolicy,
  SigningPrivateKey, toBase64Url, verifyDeviceCert, verifyOrg, verifyPolicy,
} from '../protocol/index.js';
import type { ApproverSetup } from './approver-process.js';

/**
 * A benchmark world: a broker process, an org built through its API with one
 * approver device and one consumer, the daemon's state files, and an approver
 * in its own process that approves every request at once with real keys.
 * The keys are throwaway benchmark keys; the approver process receives its
 * seeds on stdin.
 */

export const DIST = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(DIST, 'cli', 'main.js');

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

/** Starts a node process and resolves with the first capture group of `ready` in its stderr (or '' without one). */
export function startProcess(children: ChildProcess[], args: string[], ready: RegExp, env: NodeJS.ProcessEnv = process.env, input?: string): Promise<string> {
  const child = spawn(process.execPath, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'], env });
  children.push(child);
  child.stdin?.end(input);
  let stderr = '';
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      const match = ready.exec(stderr);
      if (match !== null) resolve(match[1] ?? '');
    });
    child.once('exit', (code) => { reject(new Error(`${args[0] ?? 'process'} exited with ${String(code)}: ${stderr.slice(-2000)}`)); });
  });
}

/** Stops every child with SIGTERM and waits for them to exit. */
export async function stopProcesses(children: ChildProcess[]): Promise<void> {
  const running = children.filter((child) => child.exitCode === null && child.signalCode === null);
  for (const child of running) child.kill('SIGTERM');
  await Promise.all(running.map((child) => new Promise((resolve) => child.once('exit', resolve))));
}

/** Builds the org, writes the daemon's state under `scratch/home` and starts the approver process. Returns the home. */
export async function makeBenchOrg(url: string, scratch: string, secretPath: string, children: ChildProcess[]): Promise<string> {
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
    policy: verifiedPolicy, devices: [verifiedDevice], path: secretPath, version: 1, created: now(), plaintext: SecretBytes.fromString('postgres://bench'),
  }));

  const home = join(scratch, 'home');
  mkdirSync(join(home, 'daemon'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'daemon', 'consumer.json'), JSON.stringify({
    v: 1, org: trust.org, orgName: 'Bench', identityKey: identity.publicKey.toBase64Url(), broker: url, consumer: consumerId, name: 'bench-host', enrollment: null, certificate: consumerCert,
  }), { mode: 0o600 });
  writeFileSync(join(home, 'daemon', 'host-key.json'), JSON.stringify({ v: 1, kind: 'stillvault-host-key', seed: seedOf(hostKey) }), { mode: 0o600 });

  const setup: ApproverSetup = {
    url, identityKey: identity.publicKey.toBase64Url(), device: deviceId, signingSeed: seedOf(deviceSigning), sealingSeed: seedOf(deviceSealing), deviceCert, policy,
  };
  await startProcess(children, [join(DIST, 'bench', 'approver-process.js')], /approver ready/, process.env, JSON.stringify(setup));
  return home;
}

function seedOf(key: SigningPrivateKey | SealingPrivateKey): string {
  const seed = key.exportSeed();
  const text = toBase64Url(seed);
  seed.fill(0);
  return text;
}

export interface LoopStats {
  count: number;
  rate: number;
  p50: number;
  p99: number;
}

/** Runs `operation` sequentially for `durationMs` after `warmup` runs and returns its rate and latency percentiles (ms). */
export async function measureLoop(durationMs: number, operation: () => Promise<void>, warmup = 200): Promise<LoopStats> {
  for (let i = 0; i < warmup; i++) await operation();
  const latencies: number[] = [];
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    const begin = performance.now();
    await operation();
    latencies.push(performance.now() - begin);
  }
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { count: latencies.length, rate: latencies.length / (elapsed / 1000), p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

export function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? 0;
}
