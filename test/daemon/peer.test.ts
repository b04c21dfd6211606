import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, openSync, closeSync, readFileSync, readlinkSync, realpathSync, rmSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/daemon/addon.js';
import { DaemonError } from '../../src/daemon/errors.js';
import { identifyCaller, parseCmdline, parseGroups, parseStartTime, pinPeer, resolveCaller, socketFd, type CallerIdentity, type PinnedPeer } from '../../src/daemon/peer.js';
import { bundleFixture } from './helpers/bundle.js';
import { readJsonLine, waitForExit } from './helpers/process.js';

// A client that connects to argv[1], prints "connected" and stays until killed.
const CLIENT_SCRIPT = `
const socket = require('node:net').connect(process.argv[1], () => process.stdout.write('connected\\n'));
socket.on('data', () => {});
setInterval(() => {}, 1000);
`;

let directory: string;
let socketPath: string;
let server: net.Server | undefined;
const children: ChildProcess[] = [];

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), 'sv-peer-'));
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill('SIGKILL');
    await waitForExit(child);
  }
  if (server !== undefined) {
    server.close();
    server = undefined;
  }
});

/** Starts a server on a fresh socket path; `onConnection` runs inside the 'connection' handler. */
async function startServer(onConnection: (socket: net.Socket) => void): Promise<string> {
  socketPath = join(directory, `peer-${children.length}-${Date.now()}.sock`);
  server = net.createServer(onConnection);
  await new Promise<void>((resolve) => server?.listen(socketPath, resolve));
  return socketPath;
}

/** Spawns `executable -e CLIENT_SCRIPT path` and waits until it is connected. */
async function spawnClient(path: string, executable = process.execPath): Promise<ChildProcess> {
  const child = spawn(executable, ['-e', CLIENT_SCRIPT, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => {
      resolve();
    });
    child.once('error', reject);
  });
  return child;
}

/** Runs identifyCaller in the connection handler of a new server. */
async function identifyNext(options: { hashExe?: boolean } = {}): Promise<{ path: string; identity: Promise<CallerIdentity> }> {
  let resolveIdentity: (identity: Promise<CallerIdentity>) => void = () => undefined;
  const identity = new Promise<CallerIdentity>((resolve) => {
    resolveIdentity = resolve;
  });
  const path = await startServer((socket) => {
    resolveIdentity(identifyCaller(socket, options));
  });
  return { path, identity };
}

/** Runs pinPeer in the connection handler and resolves with the pinned peer. */
async function pinNextPeer(): Promise<{ path: string; pinned: Promise<PinnedPeer> }> {
  let resolvePinned: (peer: PinnedPeer) => void = () => undefined;
  const pinned = new Promise<PinnedPeer>((resolve) => {
    resolvePinned = resolve;
  });
  const path = await startServer((socket) => {
    resolvePinned(pinPeer(socket));
  });
  return { path, pinned };
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

describe('identifyCaller', () => {
  it('identifies a child process', async () => {
    const { path, identity } = await identifyNext();
    const child = await spawnClient(path);
    const caller = await identity;
    const pid = child.pid ?? -1;

    expect(caller.pid).toBe(pid);
    expect(caller.uid).toBe(process.getuid?.());
    expect(caller.gid).toBe(process.getgid?.());
    expect(caller.user).toBe(userInfo().username);
    expect(caller.exe).toBe(realpathSync(process.execPath));
    expect(caller.cmdline).toEqual([process.execPath, '-e', CLIENT_SCRIPT, path]);
    expect(caller.startTime).toBe(parseStartTime(readFileSync(`/proc/${pid}/stat`, 'utf8')));
    expect(caller.groups).toEqual(parseGroups(readFileSync(`/proc/${pid}/status`, 'utf8')));
    expect(caller.exeSha256).toBeUndefined();
  });

  it('hashes the executable on request', async () => {
    const { path, identity } = await identifyNext({ hashExe: true });
    await spawnClient(path);
    const caller = await identity;

    const expected = createHash('sha256').update(readFileSync(process.execPath)).digest('hex');
    expect(caller.exeSha256).toBe(expected);
  });

  it('identifies a client in this process', async () => {
    const { path, identity } = await identifyNext();
    const client = net.connect(path);
    const caller = await identity;
    client.destroy();

    expect(caller.pid).toBe(process.pid);
  });

  it('closes the pidfd afterwards', async () => {
    const { path, pinned } = await pinNextPeer();
    await spawnClient(path);
    const peer = await pinned;
    expect(peer.pidfd).not.toBeNull();
    const pidfd = peer.pidfd ?? -1;
    expect(readlinkSync(`/proc/self/fd/${pidfd}`)).toBe('anon_inode:[pidfd]');

    await resolveCaller(peer);

    expect(() => readlinkSync(`/proc/self/fd/${pidfd}`)).toThrow();
  });

  it('rejects a caller that exited', async () => {
    const { path, pinned } = await pinNextPeer();
    const child = await spawnClient(path);
    const peer = await pinned;

    child.kill('SIGKILL');
    await waitForExit(child);

    await expectDaemonError(resolveCaller(peer), 'caller_gone');
  });

  it('rejects a caller that is a zombie', async () => {
    // The shell execs sleep, which never reaps the client, so the client stays a zombie.
    const { path, pinned } = await pinNextPeer();
    const parent = spawn('sh', ['-c', `"$0" -e "$1" "$2" & echo $!; exec sleep 60`, process.execPath, CLIENT_SCRIPT, path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(parent);
    const peer = await pinned;
    const clientPid = peer.pid;

    process.kill(clientPid, 'SIGKILL');
    await waitUntil(() => procState(clientPid) === 'Z');

    await expectDaemonError(resolveCaller(peer), 'caller_gone');
  });

  it('rejects a deleted executable', async () => {
    const copy = join(directory, 'node-copy');
    copyFileSync(process.execPath, copy);
    chmodSync(copy, 0o755);
    const { path, pinned } = await pinNextPeer();
    await spawnClient(path, copy);
    const peer = await pinned;

    unlinkSync(copy);

    const error = await expectDaemonError(resolveCaller(peer), 'caller_untrusted_exe');
    expect(error.message).toContain('(deleted)');
  });

  const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

  it.skipIf(!canUnshare)('rejects a caller in another pid namespace', async () => {
    // The server runs in a new pid namespace, where this test process has no pid.
    const fixture = await bundleFixture(join(import.meta.dirname, 'fixtures', 'identify-server.ts'));
    try {
      const path = join(directory, 'namespace.sock');
      const serverProcess = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, fixture.file, path], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(serverProcess);
      expect(await readJsonLine(serverProcess)).toEqual({ status: 'listening' });

      const client = net.connect(path);
      const result = await readJsonLine(serverProcess);
      client.destroy();

      expect(result.status).toBe('failed');
      expect(result.code).toBe('caller_unidentified');
      expect(result.message).toContain('pid namespace');
    } finally {
      await fixture.remove();
    }
  });
});

describe('socketFd', () => {
  it('rejects an unconnected socket', () => {
    const socket = new net.Socket();
    expect(() => socketFd(socket)).toThrow(DaemonError);
    expect(() => socketFd(socket)).toThrow(/no file descriptor/);
  });
});

describe('native addon', () => {
  const addon = loadAddon();

  it('reports ENOTSOCK for a regular file', () => {
    const fd = openSync('/dev/null', 'r');
    try {
      expect(() => addon.peerCred(fd)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', syscall: 'getsockopt(SO_PEERCRED)' }));
    } finally {
      closeSync(fd);
    }
  });

  it('rejects a non-numeric fd', () => {
    expect(() => addon.peerCred('3' as unknown as number)).toThrow(TypeError);
    expect(() => {
      addon.closeFd(-1);
    }).toThrow(TypeError);
  });

  it('reports EBADF for a closed fd', () => {
    const fd = openSync('/dev/null', 'r');
    closeSync(fd);
    expect(() => {
      addon.closeFd(fd);
    }).toThrow(expect.objectContaining({ code: 'EBADF', errno: -9 }));
  });

  it('tracks liveness through a pidfd', async () => {
    const { path, pinned } = await pinNextPeer();
    const child = await spawnClient(path);
    const peer = await pinned;
    const pidfd = peer.pidfd ?? -1;

    expect(addon.pidfdSendSignal0(pidfd)).toBe(true);
    expect(addon.pidfdHasExited(pidfd)).toBe(false);

    child.kill('SIGKILL');
    await waitForExit(child);

    expect(addon.pidfdSendSignal0(pidfd)).toBe(false);
    expect(addon.pidfdHasExited(pidfd)).toBe(true);
    addon.closeFd(pidfd);
  });

  it('takes an exclusive flock once', () => {
    const lockFile = join(directory, 'test.lock');
    const first = openSync(lockFile, 'w');
    const second = openSync(lockFile, 'w');
    try {
      expect(addon.tryLockExclusive(first)).toBe(true);
      expect(addon.tryLockExclusive(second)).toBe(false);
      closeSync(first);
      expect(addon.tryLockExclusive(second)).toBe(true);
    } finally {
      closeSync(second);
    }
  });

  it('looks up users in the user database', () => {
    const me = userInfo();
    expect(addon.lookupUserByName(me.username)).toEqual({ uid: me.uid, gid: me.gid });
    expect(addon.lookupUserById(me.uid)).toBe(me.username);
    expect(addon.lookupUserByName('no-such-user-stillvault')).toBeNull();
    expect(addon.lookupUserById(4_000_000_000)).toBeNull();
  });
});

describe('proc parsers', () => {
  it('reads start time after a tricky comm', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    const stat = `1234 (evil) 1 2 (x) y) ${fields.join(' ')}\n`;
    expect(parseStartTime(stat)).toBe(22);
  });

  it('rejects a truncated stat line', () => {
    expect(() => parseStartTime('1234 (sh) S 1 2')).toThrow(DaemonError);
    expect(() => parseStartTime('garbage')).toThrow(DaemonError);
  });

  it('splits cmdline at NUL bytes', () => {
    expect(parseCmdline(Buffer.from('node\0-e\0a b\0'))).toEqual(['node', '-e', 'a b']);
    expect(parseCmdline(Buffer.from('one\0\0three\0'))).toEqual(['one', '', 'three']);
    expect(parseCmdline(Buffer.alloc(0))).toEqual([]);
  });

  it('reads supplementary groups', () => {
    expect(parseGroups('Name:\tx\nGroups:\t4 24 27 \nPid:\t1\n')).toEqual([4, 24, 27]);
    expect(parseGroups('Name:\tx\nGroups:\t\n')).toEqual([]);
    expect(parseGroups('Name:\tx\n')).toEqual([]);
  });
});

function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
