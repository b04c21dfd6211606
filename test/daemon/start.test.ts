// Daemon start-up checks, rollback refusal and lease expiry, against a real
// broker and real daemon processes.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueConsumerCert } from '../../src/protocol/index.js';
import { now } from '../broker/fixtures.js';
import { Approver, daemonEnv, defined, makeDaemonWorld, runCli, spawnDaemon, type DaemonWorld } from './world.js';

let world: DaemonWorld;
let approver: Approver;

beforeAll(async () => {
  world = await makeDaemonWorld({ 'prod/rolled': 'rolled-value', 'prod/short': 'short-value', 'prod/late': 'late-value' }, { deliveryWindowSeconds: 2 });
  approver = new Approver(world);
  await approver.start();
});

afterAll(async () => {
  await approver.stop();
  await world.broker.stop();
});

/** Copies the world's home to a new directory and lets `change` edit daemon/consumer.json or add files. */
function homeWith(change: (daemonDir: string) => void): string {
  const home = mkdtempSync(join(tmpdir(), 'sv-home-'));
  cpSync(world.home, home, { recursive: true });
  change(join(home, 'daemon'));
  return home;
}

function socketIn(home: string): string {
  return join(home, 'run', 'daemon.sock');
}

describe('daemon start', () => {
  it('fails closed when not enrolled', async () => {
    const home = mkdtempSync(join(tmpdir(), 'sv-empty-'));
    const result = await runCli(['daemon', '--socket', socketIn(home)], { env: { ...process.env, STILLVAULT_HOME: home } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('stillvault: error: the daemon did not start: this machine is not enrolled');
    expect(result.stderr).toContain('hint: enroll this machine first');
  });

  it('fails closed with an expired certificate', async () => {
    const expired = await issueConsumerCert(world.org.identity, {
      consumer: world.consumer.id, name: 'build-01', hostKey: world.consumer.host.publicKey.toBase64Url(), issued: now() - 7200, expires: now() - 3600,
    });
    const home = homeWith((daemonDir) => {
      const file = join(daemonDir, 'consumer.json');
      const state = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      writeFileSync(file, JSON.stringify({ ...state, certificate: expired }), { mode: 0o600 });
    });
    const result = await runCli(['daemon', '--socket', socketIn(home)], { env: { ...process.env, STILLVAULT_HOME: home } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('is not valid (expired');
  });

  it('fails closed with a certificate for another host key', async () => {
    const home = homeWith((daemonDir) => {
      writeFileSync(join(daemonDir, 'host-key.json'), JSON.stringify({ v: 1, kind: 'stillvault-host-key', seed: 'A'.repeat(43) }), { mode: 0o600 });
    });
    const result = await runCli(['daemon', '--socket', socketIn(home)], { env: { ...process.env, STILLVAULT_HOME: home } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('with another host key');
  });
});

describe('release checks', () => {
  it('refuses a secret version older than one seen', async () => {
    const home = homeWith((daemonDir) => {
      writeFileSync(join(daemonDir, 'seen.json'), JSON.stringify({
        v: 1, policyVersions: {}, secretVersions: { 'prod/rolled': 5 }, requests: {}, auditHead: null,
      }), { mode: 0o600 });
    });
    const daemonWorld = { ...world, home, socketPath: socketIn(home) };
    const daemon = await spawnDaemon(daemonWorld);
    try {
      const result = await runCli(['get', 'prod/rolled'], { env: daemonEnv(daemonWorld) });
      expect(result.code).toBe(1);
      expect(result.stdout.length).toBe(0);
      expect(result.stderr).toContain('is older than version 5 already seen (secret_rollback)');
      expect(daemon.logs()).toContain('"code":"secret_rollback"');
    } finally {
      await daemon.stop();
    }
  });

  it('refuses a policy version older than one seen', async () => {
    const home = homeWith((daemonDir) => {
      writeFileSync(join(daemonDir, 'seen.json'), JSON.stringify({
        v: 1, policyVersions: { prod: 9 }, secretVersions: {}, requests: {}, auditHead: null,
      }), { mode: 0o600 });
    });
    const daemonWorld = { ...world, home, socketPath: socketIn(home) };
    const daemon = await spawnDaemon(daemonWorld);
    try {
      const result = await runCli(['get', 'prod/rolled'], { env: daemonEnv(daemonWorld) });
      expect(result.code).toBe(1);
      expect(daemon.logs()).toContain('"code":"policy_rollback"');
    } finally {
      await daemon.stop();
    }
  });

  it('records released versions and request ids in seen.json', async () => {
    const home = homeWith(() => undefined);
    const daemonWorld = { ...world, home, socketPath: socketIn(home) };
    const daemon = await spawnDaemon(daemonWorld);
    try {
      const result = await runCli(['get', 'prod/rolled'], { env: daemonEnv(daemonWorld) });
      expect(result.code).toBe(0);
      const seen = JSON.parse(readFileSync(join(home, 'daemon', 'seen.json'), 'utf8')) as { secretVersions: Record<string, number>; policyVersions: Record<string, number>; requests: Record<string, number> };
      expect(seen.secretVersions['prod/rolled']).toBe(1);
      expect(seen.policyVersions.prod).toBe(1);
      expect(Object.keys(seen.requests)).toContain(defined(approver.requests.at(-1), 'last request').body.id);
    } finally {
      await daemon.stop();
    }
  });
});

describe('leases', () => {
  it('end at the hard expiry', async () => {
    const home = homeWith(() => undefined);
    const daemonWorld = { ...world, home, socketPath: socketIn(home) };
    const daemon = await spawnDaemon(daemonWorld);
    try {
      const first = await runCli(['get', 'prod/short', '--lease', '1'], { env: daemonEnv(daemonWorld) });
      expect(first.code).toBe(0);
      await waitFor(() => /"event":"lease-ended".*"reason":"expired"/.test(daemon.logs()), 5000);
      const before = approver.requests.length;
      const second = await runCli(['get', 'prod/short', '--lease', '1'], { env: daemonEnv(daemonWorld) });
      expect(second.code).toBe(0);
      expect(second.stdout.toString('utf8')).toBe('short-value');
      expect(approver.requests.length).toBe(before + 1);
    } finally {
      await daemon.stop();
    }
  });
});

describe('undecided requests', () => {
  it('exit 4 when nobody decides in time', async () => {
    const home = homeWith(() => undefined);
    const daemonWorld = { ...world, home, socketPath: socketIn(home) };
    const daemon = await spawnDaemon(daemonWorld, ['--request-timeout', '2']);
    approver.decision = 'ignore';
    try {
      const result = await runCli(['get', 'prod/late'], { env: daemonEnv(daemonWorld) });
      expect(result.code).toBe(4);
      expect(result.stderr).toContain('(request_expired)');
      expect(result.stdout.length).toBe(0);
    } finally {
      approver.decision = 'approve';
      await daemon.stop();
    }
  });

  it('exit 4 when no approver receives the request', async () => {
    const home = homeWith(() => undefined);
    const daemonWorld = { ...world, home, socketPath: socketIn(home) };
    const daemon = await spawnDaemon(daemonWorld);
    await approver.stop();
    try {
      const result = await runCli(['get', 'prod/late'], { env: daemonEnv(daemonWorld) });
      expect(result.code).toBe(4);
      expect(result.stderr).toContain('no approver received the request');
      expect(result.stderr).toContain('(request_undelivered)');
    } finally {
      await daemon.stop();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
