// End-to-end tests of the consumer daemon: a real broker process, a real
// daemon process on a real Unix socket, real CLI client processes and a
// simulated approver deciding over the broker's WebSocket.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRevocation } from '../../src/protocol/index.js';
import { now } from '../broker/fixtures.js';
import { Approver, daemonEnv, defined, makeDaemonWorld, runCli, spawnDaemon, type DaemonProcess, type DaemonWorld } from './world.js';

const CANARY = 'canary-7f3a9c1e-not-a-real-secret';
const MULTILINE = 'line one\nžluťoučký kůň\n';

let world: DaemonWorld;
let daemon: DaemonProcess;
let approver: Approver;

beforeAll(async () => {
  world = await makeDaemonWorld({
    'prod/canary': CANARY, 'prod/multi': MULTILINE, 'prod/denied': 'never-shown', 'prod/other-exe': 'other-exe-value',
    'prod/revoke': 'revoke-value', 'prod/gone': 'gone-value', 'prod/uid': 'uid-value', 'prod/admin-revoke': 'admin-revoke-value',
  });
  daemon = await spawnDaemon(world, ['--group', '0']);
  approver = new Approver(world);
  await approver.start();
});

afterAll(async () => {
  await approver.stop();
  await daemon.stop();
  await world.broker.stop();
});

interface ApiResponse {
  status: number;
  body: string;
}

function api(method: string, path: string, options: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath: world.socketPath, method, path, headers: { host: 'localhost', ...options.headers }, agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => { body += chunk.toString('utf8'); });
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, body }); });
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

describe('stillvault get', () => {
  it('prints the value byte-exact after approval', async () => {
    const before = approver.requests.length;
    const result = await runCli(['get', 'prod/multi', '--reason', 'run the migration'], { env: daemonEnv(world) });
    expect(result.code).toBe(0);
    expect(result.stdout.equals(Buffer.from(MULTILINE))).toBe(true);
    expect(result.stderr).toContain('approved by approver 0');
    expect(approver.requests.length).toBe(before + 1);
    const signed = defined(approver.requests.at(-1), 'last request').body;
    expect(signed.reason).toBe('run the migration');
    expect(signed.requester.exe).toBe(process.execPath);
    expect(signed.requester.uid).toBe(process.getuid?.());
  });

  it('serves the same executable from the lease', async () => {
    const before = approver.requests.length;
    const result = await runCli(['get', 'prod/multi'], { env: daemonEnv(world) });
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toBe(MULTILINE);
    expect(approver.requests.length).toBe(before);
  });

  it('makes a new request for another executable', async () => {
    await runCli(['get', 'prod/other-exe'], { env: daemonEnv(world) });
    const directory = mkdtempSync(join(tmpdir(), 'sv-node-'));
    const copy = join(directory, 'node-copy');
    copyFileSync(process.execPath, copy);
    try {
      const before = approver.requests.length;
      const result = await runCli(['get', 'prod/other-exe'], { env: daemonEnv(world), node: copy });
      expect(result.code).toBe(0);
      expect(result.stdout.toString('utf8')).toBe('other-exe-value');
      expect(approver.requests.length).toBe(before + 1);
      expect(defined(approver.requests.at(-1), 'last request').body.requester.exe).toBe(copy);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('exits 3 when the approver denies', async () => {
    approver.decision = 'deny';
    try {
      const result = await runCli(['get', 'prod/denied'], { env: daemonEnv(world) });
      expect(result.code).toBe(3);
      expect(result.stdout.length).toBe(0);
      expect(result.stderr).toContain('denied by approver 0');
      expect(result.stderr).toContain('stillvault: error:');
    } finally {
      approver.decision = 'approve';
    }
  });

  it('formats env, sh and json output', async () => {
    const env = await runCli(['get', 'prod/canary', '--format', 'env'], { env: daemonEnv(world) });
    expect(env.stdout.toString('utf8')).toBe(`CANARY="${CANARY}"\n`);
    const sh = await runCli(['get', 'prod/canary', '--format', 'sh', '--name', 'TOKEN'], { env: daemonEnv(world) });
    expect(sh.stdout.toString('utf8')).toBe(`export TOKEN='${CANARY}'\n`);
    const json = await runCli(['get', 'prod/canary', '--format', 'json'], { env: daemonEnv(world) });
    expect(JSON.parse(json.stdout.toString('utf8'))).toEqual({ name: 'CANARY', value: CANARY });
  });

  it('rejects an invalid variable name', async () => {
    const result = await runCli(['get', 'prod/canary', '--format', 'env', '--name', '1BAD'], { env: daemonEnv(world) });
    expect(result.code).toBe(2);
    expect(result.stdout.length).toBe(0);
    expect(result.stderr).toContain('not a valid shell variable name');
  });

  it('exits 5 when no daemon listens', async () => {
    const result = await runCli(['get', 'prod/canary', '--socket', join(tmpdir(), 'sv-no-such-dir', 'daemon.sock')]);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain('cannot reach the daemon');
  });
});

describe('caller identity', () => {
  it('denies another uid by the local rules', async (context) => {
    if (process.getuid?.() !== 0) {
      context.skip('needs root to create a test user and run a client as that user');
      return;
    }
    const user = `svtest${process.pid}`;
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    try {
      const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
      // The socket belongs to group 0 (--group 0), so the test user reaches the daemon only with that supplementary group.
      const result = await runCli(['get', 'prod/uid'], {
        env: { PATH: process.env.PATH, STILLVAULT_SOCKET: world.socketPath },
        wrapper: ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--groups=0', '--'],
        cwd: '/',
      });
      expect(result.stderr).toContain('no local rule allows uid');
      expect(result.code).toBe(1);
      expect(result.stdout.length).toBe(0);
      expect(approver.requests.some((request) => request.body.paths.includes('prod/uid'))).toBe(false);
    } finally {
      execFileSync('userdel', [user]);
    }
  });

  it('rejects a caller that exits before it is identified', async () => {
    // Stopping the daemon makes the order certain: the client connects, sends
    // its request and is reaped before the daemon accepts the connection.
    const before = approver.requests.length;
    daemon.child.kill('SIGSTOP');
    try {
      const script = [
        'import socket, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
        's.connect(sys.argv[1])',
        'body = b\'{"paths":["prod/gone"]}\'',
        's.sendall(b"POST /v1/secrets HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: " + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)',
      ].join('\n');
      const client = spawn('python3', ['-c', script, world.socketPath], { stdio: 'inherit' });
      const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
      expect(code).toBe(0);
    } finally {
      daemon.child.kill('SIGCONT');
    }
    await waitFor(() => /"code":"caller_gone"/.test(daemon.logs()));
    expect(approver.requests.length).toBe(before);
  });
});

describe('socket API', () => {
  it('returns the status', async () => {
    const response = await api('GET', '/v1/status');
    expect(response.status).toBe(200);
    const status = JSON.parse(response.body) as Record<string, unknown>;
    expect(status.consumer).toBe(world.consumer.id);
    expect(status.org).toBe(world.org.trust.org);
  });

  it('rejects Origin, Referer and foreign Host headers', async () => {
    const cases: Record<string, string>[] = [{ origin: 'http://evil.example' }, { referer: 'http://evil.example/' }, { host: 'evil.example' }];
    for (const headers of cases) {
      const response = await api('GET', '/v1/status', { headers });
      expect(response.status).toBe(400);
      expect((JSON.parse(response.body) as { error: { code: string } }).error.code).toBe('invalid_request');
    }
  });

  it('rejects a body over 64 KiB', async () => {
    const response = await api('POST', '/v1/secrets', { body: Buffer.alloc(65 * 1024, 0x20), headers: { 'content-type': 'application/json' } });
    expect(response.status).toBe(413);
  });

  it('rejects a malformed body', async () => {
    const response = await api('POST', '/v1/secrets', { body: '{"paths":["../etc"]}' });
    expect(response.status).toBe(400);
  });

  it('streams progress then the result', async () => {
    const response = await api('POST', '/v1/secrets', { body: JSON.stringify({ paths: ['prod/revoke'], reason: 'api test', leaseSeconds: 120 }) });
    const lines = response.body.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => line.type)).toEqual(expect.arrayContaining(['requested', 'approved', 'result']));
    const result = lines.at(-1) as { type: string; secrets: Record<string, string>; lease: { id: string; remaining: number; expires: number } };
    expect(Buffer.from(defined(result.secrets['prod/revoke'], 'secret'), 'base64').toString('utf8')).toBe('revoke-value');
    expect(result.lease.remaining).toBeLessThanOrEqual(120);
    expect(result.lease.remaining).toBeGreaterThan(100);
  });

  it('lists and revokes the caller\'s leases', async () => {
    const listed = JSON.parse((await api('GET', '/v1/leases')).body) as { leases: { id: string; paths: string[]; remaining: number }[] };
    const lease = listed.leases.find((candidate) => candidate.paths.includes('prod/revoke'));
    expect(lease).toBeDefined();
    expect(JSON.stringify(listed)).not.toContain('revoke-value');

    const leaseId = defined(lease, 'lease').id;
    const revoked = await api('DELETE', `/v1/leases/${leaseId}`);
    expect(revoked.status).toBe(200);
    expect((await api('DELETE', `/v1/leases/${leaseId}`)).status).toBe(404);

    const before = approver.requests.length;
    const again = await api('POST', '/v1/secrets', { body: JSON.stringify({ paths: ['prod/revoke'] }) });
    expect(again.body).toContain('"type":"result"');
    expect(approver.requests.length).toBe(before + 1);
  });
});

describe('lease revocation', () => {
  it('wipes the lease the admin revoked', async () => {
    const response = await api('POST', '/v1/secrets', { body: JSON.stringify({ paths: ['prod/admin-revoke'] }) });
    const result = JSON.parse(defined(response.body.trim().split('\n').at(-1), 'result line')) as { lease: { id: string } };
    const leaseId = result.lease.id;

    const revocation = await createRevocation(world.org.identity, { subject: 'lease', id: leaseId, reason: 'rotated', revoked: now() });
    await world.admin.putRevocation(revocation);
    await waitFor(() => daemon.logs().includes(`"event":"lease-revoked","lease":"${leaseId}","by":"admin","held":true`));

    const listed = JSON.parse((await api('GET', '/v1/leases')).body) as { leases: { id: string }[] };
    expect(listed.leases.map((lease) => lease.id)).not.toContain(leaseId);
    const before = approver.requests.length;
    await api('POST', '/v1/secrets', { body: JSON.stringify({ paths: ['prod/admin-revoke'] }) });
    expect(approver.requests.length).toBe(before + 1);
  });
});

describe('logs', () => {
  it('never contain a secret value', () => {
    const logs = daemon.logs() + world.broker.logs();
    for (const value of [CANARY, 'other-exe-value', 'revoke-value', 'admin-revoke-value', 'žluťoučký']) {
      expect(logs).not.toContain(value);
      expect(logs).not.toContain(Buffer.from(value).toString('base64'));
    }
    expect(daemon.logs()).toContain('"event":"request-released"');
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
