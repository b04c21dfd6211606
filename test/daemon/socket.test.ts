import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DaemonError } from '../../src/daemon/errors.js';
import { defaultSocketPath, listenUnixSocket, LOCK_FILE_NAME, type UnixSocketListener } from '../../src/daemon/socket.js';
import { bundleFixture } from './helpers/bundle.js';
import { readJsonLine, waitForExit } from './helpers/process.js';

// A plain listener without the lock, as a crashed daemon leaves behind after SIGKILL.
const PLAIN_LISTENER = `
require('node:net').createServer(() => {}).listen(process.argv[1], () => process.stdout.write('{"status":"listening"}\\n'));
`;

const OTHER_ID = 4242;
// Handing files to another user or group needs root.
const IS_ROOT = process.getuid?.() === 0;

let root: string;
let fixture: { file: string; remove(): Promise<void> };
let caseNumber = 0;
const children: ChildProcess[] = [];
const listeners: UnixSocketListener[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sv-socket-'));
  fixture = await bundleFixture(join(import.meta.dirname, 'fixtures', 'listen.ts'));
});

afterAll(async () => {
  await fixture.remove();
  rmSync(root, { recursive: true, force: true });
});

afterEach(async () => {
  for (const listener of listeners.splice(0)) await listener.close();
  for (const child of children.splice(0)) {
    child.kill('SIGKILL');
    await waitForExit(child);
  }
});

/** Returns a socket path inside a directory that does not exist yet. */
function freshSocketPath(): string {
  caseNumber++;
  return join(root, `case-${caseNumber}`, 'daemon.sock');
}

async function listen(path: string, options: { group?: number } = {}): Promise<UnixSocketListener> {
  const listener = await listenUnixSocket(net.createServer(), { path, ...options });
  listeners.push(listener);
  return listener;
}

async function expectDaemonError(promise: Promise<unknown>, code: string): Promise<DaemonError> {
  const error = await promise.then(
    () => undefined,
    (rejection: unknown) => rejection,
  );
  expect(error).toBeInstanceOf(DaemonError);
  expect((error as DaemonError).code).toBe(code);
  return error as DaemonError;
}

function spawnNode(args: string[]): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

function connect(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = net.connect(path, () => {
      client.destroy();
      resolve();
    });
    client.once('error', reject);
  });
}

function modeOf(path: string): number {
  return lstatSync(path).mode & 0o777;
}

/** Leaves a socket file with no listener: a child listens, then dies by SIGKILL. */
async function leaveStaleSocket(path: string): Promise<void> {
  mkdirSync(join(path, '..'), { mode: 0o700 });
  const child = spawnNode(['-e', PLAIN_LISTENER, path]);
  expect(await readJsonLine(child)).toEqual({ status: 'listening' });
  child.kill('SIGKILL');
  await waitForExit(child);
  expect(lstatSync(path).isSocket()).toBe(true);
}

describe('listenUnixSocket', () => {
  it('creates a private directory and socket', async () => {
    const path = freshSocketPath();
    await listen(path);

    expect(modeOf(join(path, '..'))).toBe(0o700);
    expect(modeOf(path)).toBe(0o600);
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(modeOf(join(path, '..', LOCK_FILE_NAME))).toBe(0o600);
    await connect(path);
  });

  it('serves an http.Server', async () => {
    const server = http.createServer((_request, response) => {
      response.end('ok');
    });
    const httpPath = freshSocketPath();
    const listener = await listenUnixSocket(server, { path: httpPath });
    listeners.push(listener);

    const body = await new Promise<string>((resolve, reject) => {
      http.get({ socketPath: httpPath, path: '/' }, (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => {
          resolve(text);
        });
      }).on('error', reject);
    });
    expect(body).toBe('ok');
  });

  it.skipIf(!IS_ROOT)('gives a group access with 0660 and 0710', async () => {
    const path = freshSocketPath();
    await listen(path, { group: OTHER_ID });

    const directory = lstatSync(join(path, '..'));
    const socket = lstatSync(path);
    expect(directory.mode & 0o777).toBe(0o710);
    expect(directory.gid).toBe(OTHER_ID);
    expect(socket.mode & 0o777).toBe(0o660);
    expect(socket.gid).toBe(OTHER_ID);
  });

  it('removes the socket file on close', async () => {
    const path = freshSocketPath();
    const listener = await listenUnixSocket(net.createServer(), { path });
    await listener.close();

    expect(existsSync(path)).toBe(false);
    // The lock was released, so a new daemon can start at once.
    await listen(path);
    await connect(path);
  });

  it('replaces a stale socket from a killed daemon', async () => {
    const path = freshSocketPath();
    await leaveStaleSocket(path);

    await listen(path);

    await connect(path);
    expect(modeOf(path)).toBe(0o600);
  });

  it('rejects a live listener without the lock', async () => {
    const path = freshSocketPath();
    mkdirSync(join(path, '..'), { mode: 0o700 });
    const other = spawnNode(['-e', PLAIN_LISTENER, path]);
    expect(await readJsonLine(other)).toEqual({ status: 'listening' });

    const error = await expectDaemonError(listen(path), 'socket_in_use');

    expect(error.message).toBe(`another daemon is listening on ${path}`);
    await connect(path);
  });

  it('rejects a second daemon holding the lock', async () => {
    const path = freshSocketPath();
    const first = spawnNode([fixture.file, path]);
    expect(await readJsonLine(first)).toMatchObject({ status: 'listening' });

    const error = await expectDaemonError(listen(path), 'socket_in_use');

    expect(error.message).toContain('another daemon has locked');
    await connect(path);
  });

  it('keeps a regular file at the path', async () => {
    const path = freshSocketPath();
    mkdirSync(join(path, '..'), { mode: 0o700 });
    writeFileSync(path, 'not a socket');

    const error = await expectDaemonError(listen(path), 'socket_unsafe');

    expect(error.message).toContain('is not a socket');
    expect(readFileSync(path, 'utf8')).toBe('not a socket');
  });

  it('binds exactly one of two racing daemons', async () => {
    const path = freshSocketPath();
    await leaveStaleSocket(path);

    const racers = [spawnNode([fixture.file, path]), spawnNode([fixture.file, path])];
    const results = await Promise.all(racers.map(readJsonLine));

    const statuses = results.map((result) => result.status).sort();
    expect(statuses).toEqual(['failed', 'listening']);
    const failed = results.find((result) => result.status === 'failed');
    expect(failed?.code).toBe('socket_in_use');
    const loser = racers[results.findIndex((result) => result.status === 'failed')];
    expect(loser).toBeDefined();
    if (loser !== undefined) expect((await waitForExit(loser)).code).toBe(3);
    await connect(path);
  });

  it('lets the next daemon start after SIGTERM', async () => {
    const path = freshSocketPath();
    const first = spawnNode([fixture.file, path]);
    expect(await readJsonLine(first)).toMatchObject({ status: 'listening' });
    first.kill('SIGTERM');
    expect((await waitForExit(first)).code).toBe(0);
    expect(existsSync(path)).toBe(false);

    await listen(path);
  });

  it('rejects a group-accessible directory', async () => {
    const path = freshSocketPath();
    mkdirSync(join(path, '..'));
    chmodSync(join(path, '..'), 0o750);

    const error = await expectDaemonError(listen(path), 'socket_unsafe');

    expect(error.message).toContain('0750');
    expect(modeOf(join(path, '..'))).toBe(0o750);
  });

  it.skipIf(!IS_ROOT)('rejects a directory owned by another user', async () => {
    const path = freshSocketPath();
    mkdirSync(join(path, '..'), { mode: 0o700 });
    chownSync(join(path, '..'), OTHER_ID, OTHER_ID);

    const error = await expectDaemonError(listen(path), 'socket_unsafe');

    expect(error.message).toContain(`owned by uid ${OTHER_ID}`);
  });

  it('rejects a symbolic link as directory', async () => {
    const target = mkdtempSync(join(root, 'target-'));
    chmodSync(target, 0o700);
    const link = join(root, `link-${caseNumber++}`);
    symlinkSync(target, link);

    await expectDaemonError(listen(join(link, 'daemon.sock')), 'socket_unsafe');
  });

  it.skipIf(!IS_ROOT)('rejects a lock file owned by another user', async () => {
    const path = freshSocketPath();
    mkdirSync(join(path, '..'), { mode: 0o700 });
    const lock = join(path, '..', LOCK_FILE_NAME);
    writeFileSync(lock, '');
    chownSync(lock, OTHER_ID, OTHER_ID);

    await expectDaemonError(listen(path), 'socket_unsafe');
  });

  it('rejects paths Unix sockets cannot hold', async () => {
    await expectDaemonError(listen('relative/daemon.sock'), 'socket_path_invalid');
    await expectDaemonError(listen(join(root, 'x'.repeat(120), 'daemon.sock')), 'socket_path_invalid');
    await expectDaemonError(listen(join(root, 'missing-parent', 'child', 'daemon.sock')), 'socket_path_invalid');
  });
});

describe('defaultSocketPath', () => {
  it('prefers XDG_RUNTIME_DIR', () => {
    expect(defaultSocketPath({ env: { XDG_RUNTIME_DIR: '/run/user/1000' }, uid: 1000 })).toBe('/run/user/1000/stillvault/daemon.sock');
  });

  it('ignores a relative XDG_RUNTIME_DIR', () => {
    expect(defaultSocketPath({ env: { XDG_RUNTIME_DIR: 'run', TMPDIR: '/var/tmp' }, uid: 987_654 })).toBe('/var/tmp/stillvault-987654/daemon.sock');
  });

  it('uses /run/user/UID when it exists', () => {
    const uid = process.getuid?.() ?? 0;
    const expected = existsSync(`/run/user/${uid}`) ? `/run/user/${uid}/stillvault/daemon.sock` : `/var/tmp/stillvault-${uid}/daemon.sock`;
    expect(defaultSocketPath({ env: { TMPDIR: '/var/tmp' }, uid })).toBe(expected);
  });

  it('falls back to /tmp without TMPDIR', () => {
    expect(defaultSocketPath({ env: {}, uid: 987_654 })).toBe('/tmp/stillvault-987654/daemon.sock');
  });
});
