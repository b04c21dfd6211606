// Attacks on the consumer daemon by other processes on the same machine:
// reading its memory or a core dump, and flooding approvers with requests.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SECRETS_CALLS_PER_UID } from '../../src/daemon/service.js';
import { Approver, defined, makeDaemonWorld, spawnDaemon, type DaemonProcess, type DaemonWorld } from './world.js';

let world: DaemonWorld;
let daemon: DaemonProcess;
let approver: Approver;

beforeAll(async () => {
  world = await makeDaemonWorld({ 'prod/flood': 'flood-value' });
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

/** Sends POST /v1/secrets and resolves once the response headers arrive; the request stays open. */
function postSecrets(body: unknown): Promise<{ request: http.ClientRequest; response: http.IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const request = http.request({
      socketPath: world.socketPath, method: 'POST', path: '/v1/secrets', headers: { host: 'localhost', 'content-type': 'application/json' }, agent: false,
    }, (response) => { resolve({ request, response }); });
    request.on('error', reject);
    request.end(JSON.stringify(body));
  });
}

function readBody(response: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    response.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
    response.on('end', () => { resolve(text); });
  });
}

/** Returns the daemon's count of requests waiting for a decision. */
async function pendingRequests(): Promise<number> {
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get({ socketPath: world.socketPath, path: '/v1/status', headers: { host: 'localhost' }, agent: false }, resolve).on('error', reject);
  });
  return (JSON.parse(await readBody(response)) as { pendingRequests: number }).pendingRequests;
}

/** Polls the status until `count` requests are pending, for at most 10 s. */
async function waitForPending(count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await pendingRequests()) !== count) {
    if (Date.now() > deadline) throw new Error(`the daemon never had ${count} pending requests`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('daemon hardening', () => {
  it('turns off core dumps and ptrace', () => {
    expect(daemon.logs()).toMatch(/"event":"start"[^\n]*"dumpable":false/);
    const pid = defined(daemon.child.pid, 'daemon pid');
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    expect(limits).toMatch(/^Max core file size\s+0\s+0\s+bytes/m);
  });

  it('caps secrets calls per uid', async () => {
    const open: http.ClientRequest[] = [];
    try {
      for (let i = 0; i < MAX_SECRETS_CALLS_PER_UID; i++) {
        const { request, response } = await postSecrets({ paths: ['prod/flood'], reason: `flood ${i}` });
        expect(response.statusCode).toBe(200);
        open.push(request);
      }
      await waitForPending(MAX_SECRETS_CALLS_PER_UID);
      const { response } = await postSecrets({ paths: ['prod/flood'], reason: 'one too many' });
      expect(response.statusCode).toBe(429);
      const body = JSON.parse(await readBody(response)) as { error: { code: string } };
      expect(body.error.code).toBe('too_many_requests');
      expect(await pendingRequests()).toBe(MAX_SECRETS_CALLS_PER_UID);
    } finally {
      for (const request of open) request.destroy();
    }
  });
});
