// End-to-end tests of how a request ends early: the caller leaves, the
// daemon stops, or every approver refuses it. A real broker process, a real
// daemon process, real CLI processes, and an approver device on the broker's
// WebSocket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerEvent } from '../../src/broker/client.js';
import { signPolicy } from '../../src/protocol/index.js';
import { makeSecret, now } from '../broker/fixtures.js';
import { Approver, daemonEnv, defined, makeDaemonWorld, runCli, spawnDaemon, type DaemonProcess, type DaemonWorld } from './world.js';

let world: DaemonWorld;
let daemon: DaemonProcess;
let approver: Approver;

beforeAll(async () => {
  world = await makeDaemonWorld({ 'prod/left': 'left-value', 'prod/stop': 'stop-value', 'prod/refused': 'refused-value', 'prod/lease': 'lease-value' });
  // A policy whose only requester rule matches a uid no test process runs as.
  const narrow = await signPolicy(world.org.identity, {
    name: 'narrow', version: 1, paths: ['narrow/**'], approvers: world.devices.map((device) => device.id), quorum: 1, maxLeaseSeconds: 3600,
    consumers: [world.consumer.id], requesters: [{ uids: [54321] }], issued: now(),
  });
  await world.admin.putPolicy(narrow);
  await world.admin.putSecret(await makeSecret(world.org, narrow, world.devices, 'narrow/x', 1, 'narrow-value'));
  daemon = await spawnDaemon(world);
  approver = new Approver(world);
  approver.decision = 'ignore';
  await approver.start();
});

afterAll(async () => {
  await approver.stop();
  await daemon.stop();
  await world.broker.stop();
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts `stillvault get PATH` and resolves with the request id once the approver has it. */
async function pendingGet(path: string): Promise<{ cli: ReturnType<typeof runCli>; id: string }> {
  const before = approver.bundles.length;
  const cli = runCli(['get', path], { env: daemonEnv(world) });
  await waitFor(() => approver.bundles.length > before);
  const bundle = defined(approver.bundles.at(-1), 'pushed bundle');
  return { cli, id: bundle.request.body.id };
}

async function requestState(id: string): Promise<string> {
  return (await defined(world.deviceClients[0], 'device client').getRequest(id)).state;
}

describe('abandoned request', () => {
  it('is cancelled when the caller leaves', async () => {
    const device = defined(world.deviceClients[0], 'device client');
    const events = await device.connect();
    try {
      const { cli, id } = await pendingGet('prod/left');
      cli.child.kill('SIGKILL');
      await cli;

      await waitFor(async () => (await requestState(id)) === 'cancelled');
      let settled: BrokerEvent | undefined;
      while (settled === undefined) {
        const event = await events.next(10_000);
        if (event.type === 'settled' && event.request === id) settled = event;
      }
      expect(settled).toMatchObject({ state: 'cancelled' });
      expect(await device.listPendingRequests()).toEqual([]);

      const bundle = defined(approver.bundles.at(-1), 'pushed bundle');
      const late = device.submitApproval(id, await approver.decide(bundle, 'approve'));
      await expect(late).rejects.toMatchObject({ code: 'request_settled' });

      const { entries } = await world.admin.auditEntries();
      const types = entries.filter(({ entry }) => entry.subjects[0] === id).map(({ entry }) => entry.type);
      expect(types).toContain('request-cancelled');
      expect(types).not.toContain('approval-accepted');
      expect(daemon.logs()).toContain(`"event":"request-cancelled","request":"${id}","why":"caller"`);
    } finally {
      await events.close();
    }
  });

  it('is cancelled when the daemon stops', async () => {
    const { cli, id } = await pendingGet('prod/stop');
    await daemon.stop();
    await cli;
    expect(await requestState(id)).toBe('cancelled');
    expect(daemon.logs()).toContain(`"event":"request-cancelled","request":"${id}","why":"daemon"`);
    daemon = await spawnDaemon(world);
  });

  it('rejects a cancel from a device', async () => {
    const { cli, id } = await pendingGet('prod/left');
    try {
      await expect(defined(world.deviceClients[0], 'device client').cancelRequest(id)).rejects.toMatchObject({ code: 'forbidden' });
      expect(await requestState(id)).toBe('pending');
    } finally {
      cli.child.kill('SIGKILL');
      await cli;
    }
  });
});

describe('refused request', () => {
  it('ends when every approver refused', async () => {
    const { cli, id } = await pendingGet('prod/refused');
    const device = defined(world.deviceClients[0], 'device client');
    await device.refuseRequest(id, 'policy_mismatch');

    const result = await cli;
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('refused by every approver (policy_mismatch)');
    expect(result.stdout.toString('utf8')).toBe('');
    expect(await requestState(id)).toBe('refused');
    expect(await device.listPendingRequests()).toEqual([]);

    const { entries } = await world.admin.auditEntries();
    const refusal = entries.find(({ entry }) => entry.type === 'request-refused' && entry.subjects[0] === id);
    expect(refusal?.entry.actor).toBe(`device:${world.devices[0]?.id ?? ''}`);
    expect(refusal?.entry.subjects).toContain('code:policy_mismatch');
  });

  it('rejects a malformed refusal code', async () => {
    const { cli, id } = await pendingGet('prod/refused');
    try {
      const device = defined(world.deviceClients[0], 'device client');
      for (const code of ['', 'Not A Code', 'x'.repeat(65), '<script>']) {
        await expect(device.refuseRequest(id, code)).rejects.toMatchObject({ code: 'invalid_request' });
      }
      await expect(world.consumerClient.refuseRequest(id, 'bad_signature')).rejects.toMatchObject({ code: 'forbidden' });
      expect(await requestState(id)).toBe('pending');
    } finally {
      cli.child.kill('SIGKILL');
      await cli;
    }
  });
});

describe('messages', () => {
  it('names a missing secret once with a hint', async () => {
    const result = await runCli(['get', 'prod/missing'], { env: daemonEnv(world) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no secret stored at prod/missing (secret_not_found)');
    expect(result.stderr).not.toContain('the broker returned');
    expect(result.stderr.match(/secret_not_found/g)?.length).toBe(1);
    expect(result.stderr).toContain('hint: ask the admin to run `stillvault secret set PATH`');
    await waitFor(() => /"event":"request-submit-failed"[^\n]*"code":"secret_not_found"/.test(daemon.logs()));
  });

  it('names the requester rule that failed', async () => {
    const result = await runCli(['get', 'narrow/x'], { env: daemonEnv(world) });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('policy narrow covers narrow/x');
    expect(result.stderr).toContain(`none of its requester rules matches user`);
    expect(result.stderr).toContain(`uid ${process.getuid?.() ?? 0}, exe ${process.execPath}`);
    expect(result.stderr).toContain('(no_eligible_approver)');
    expect(result.stderr).toContain('`stillvault policy list`');
    await waitFor(() => /"event":"request-submit-failed"[^\n]*"code":"no_eligible_approver"/.test(daemon.logs()));
  });

  it('reports a shortened lease', async () => {
    approver.decision = 'approve';
    try {
      const result = await runCli(['get', 'prod/lease', '--lease', '7200'], { env: daemonEnv(world) });
      expect(result.code).toBe(0);
      expect(result.stdout.toString('utf8')).toBe('lease-value');
      expect(result.stderr).toContain(`approved by approver 0, lease 1h (asked 2h)`);
    } finally {
      approver.decision = 'ignore';
    }
  });

  it('logs the header a request was rejected for', async () => {
    const http = await import('node:http');
    await new Promise<void>((resolve, reject) => {
      const request = http.request({ socketPath: world.socketPath, path: '/v1/status', headers: { host: 'evil.example' }, agent: false }, (response) => {
        response.resume();
        response.on('end', () => { resolve(); });
      });
      request.on('error', reject);
      request.end();
    });
    await waitFor(() => daemon.logs().includes('"event":"request-rejected","code":"invalid_request","reason":"Host \\"evil.example\\" is rejected'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(daemon.logs()).not.toContain('"code":"caller_gone"');
  });
});
