import { closeSync, statSync } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { dirname, isAbsolute, join } from 'node:path';
import { DaemonError, systemErrorCode } from './errors.js';
import { acquireLock, preparePrivateDirectory, setSocketPermissions } from './socket-permissions.js';

export const SOCKET_FILE_NAME = 'daemon.sock';
export const LOCK_FILE_NAME = 'daemon.lock';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
/** How long a connect() probe of an existing socket may take before the socket counts as live. */
const PROBE_TIMEOUT_MS = 2000;

export interface SocketPathOptions {
  env?: NodeJS.ProcessEnv;
  uid?: number;
}

/**
 * Returns the default socket path, the first that applies of:
 * 1. `$XDG_RUNTIME_DIR/stillvault/daemon.sock` when XDG_RUNTIME_DIR is an absolute path;
 * 2. `/run/user/UID/stillvault/daemon.sock` when the directory /run/user/UID exists;
 * 3. `$TMPDIR/stillvault-UID/daemon.sock`, with /tmp when TMPDIR is unset or relative.
 */
export function defaultSocketPath(options: SocketPathOptions = {}): string {
  const env = options.env ?? process.env;
  const uid = options.uid ?? currentUid();

  const runtimeDirectory = env.XDG_RUNTIME_DIR;
  if (runtimeDirectory !== undefined && isAbsolute(runtimeDirectory)) {
    return join(runtimeDirectory, 'stillvault', SOCKET_FILE_NAME);
  }
  const userRunDirectory = `/run/user/${uid}`;
  if (isDirectory(userRunDirectory)) {
    return join(userRunDirectory, 'stillvault', SOCKET_FILE_NAME);
  }
  const temporaryDirectory = env.TMPDIR !== undefined && isAbsolute(env.TMPDIR) ? env.TMPDIR : '/tmp';
  return join(temporaryDirectory, `stillvault-${uid}`, SOCKET_FILE_NAME);
}

export interface ListenOptions {
  /** Socket path; defaultSocketPath() when omitted. */
  path?: string;
  /**
   * Group id whose members may connect. The socket becomes mode 0660 and its
   * directory 0710, both owned by this group. Without it: 0600 and 0700.
   */
  group?: number;
}

export interface UnixSocketListener {
  path: string;
  /**
   * Stops accepting connections, removes the socket file and releases the
   * lock. Open connections stay open, as with net.Server.close().
   */
  close(): Promise<void>;
}

/**
 * Starts `server` (a net.Server or http.Server) on a Unix socket with private
 * permissions. An exclusive flock on `daemon.lock` beside the socket is taken
 * first and held until close() or process exit, so of two daemons started
 * together exactly one binds. The lock holder replaces a stale socket file
 * (connect() refused) and rejects a live listener or a file that is not a
 * socket, which it leaves in place. Throws DaemonError; any permission
 * failure is fatal.
 */
export async function listenUnixSocket(server: net.Server, options: ListenOptions = {}): Promise<UnixSocketListener> {
  const path = options.path ?? defaultSocketPath();
  checkSocketPath(path);
  const uid = currentUid();
  const directory = dirname(path);

  await preparePrivateDirectory(directory, uid, options.group);
  const lockFd = acquireLock(join(directory, LOCK_FILE_NAME), path, uid);
  try {
    await bindReplacingStale(server, path);
  } catch (error) {
    closeSync(lockFd);
    throw error;
  }

  const listener = createListener(server, path, lockFd);
  try {
    await setSocketPermissions(path, uid, options.group);
  } catch (error) {
    await listener.close();
    throw error;
  }
  return listener;
}

function createListener(server: net.Server, path: string, lockFd: number): UnixSocketListener {
  let closed = false;
  return {
    path,
    async close() {
      if (closed) return;
      closed = true;
      // net.Server.close() closes the listening socket and unlinks its file
      // synchronously, so the lock can be released right after it.
      if (server.listening) server.close();
      try {
        await removeSocketFile(path);
      } finally {
        closeSync(lockFd);
      }
    },
  };
}

function checkSocketPath(path: string): void {
  if (!isAbsolute(path)) {
    throw new DaemonError('socket_path_invalid', `socket path ${path} is not absolute`);
  }
  const length = Buffer.byteLength(path);
  if (length > MAX_SOCKET_PATH_BYTES) {
    throw new DaemonError('socket_path_invalid', `socket path ${path} is ${length} bytes long, but the maximum for a Unix socket path is ${MAX_SOCKET_PATH_BYTES} bytes; choose a shorter path`);
  }
}

/** Listens on `path`; on EADDRINUSE removes a stale socket and tries once more. */
async function bindReplacingStale(server: net.Server, path: string): Promise<void> {
  try {
    await listenOnce(server, path);
    return;
  } catch (error) {
    if (systemErrorCode(error) !== 'EADDRINUSE') throw listenFailed(path, error);
  }

  await removeStaleSocket(path);
  try {
    await listenOnce(server, path);
  } catch (error) {
    throw listenFailed(path, error);
  }
}

function listenFailed(path: string, cause: unknown): DaemonError {
  return new DaemonError('socket_listen_failed', `listening on ${path} failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
}

function listenOnce(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(path);
  });
}

/** Unlinks the socket at `path` when nothing listens on it; rejects anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(path);
  } catch (cause) {
    if (systemErrorCode(cause) === 'ENOENT') return;
    throw listenFailed(path, cause);
  }
  if (!stat.isSocket()) {
    throw new DaemonError('socket_unsafe', `${path} exists and is not a socket; it was left in place. Remove it or choose another socket path`);
  }
  if (await isSocketLive(path)) {
    throw new DaemonError('socket_in_use', `another daemon is listening on ${path}`);
  }
  await removeSocketFile(path);
}

/**
 * Connects to `path` to see whether a process listens on it. Only ECONNREFUSED
 * (or the file vanishing) proves the socket stale. Any other outcome counts
 * as live, so an unclear state never deletes another daemon's socket.
 */
function isSocketLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    const finish = (live: boolean) => {
      probe.destroy();
      resolve(live);
    };
    probe.setTimeout(PROBE_TIMEOUT_MS, () => {
      finish(true);
    });
    probe.once('connect', () => {
      finish(true);
    });
    probe.once('error', (error) => {
      const code = systemErrorCode(error);
      finish(code !== 'ECONNREFUSED' && code !== 'ENOENT');
    });
  });
}

async function removeSocketFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (cause) {
    if (systemErrorCode(cause) !== 'ENOENT') throw cause;
  }
}

function currentUid(): number {
  const uid = process.getuid?.();
  if (uid === undefined) {
    throw new DaemonError('socket_path_invalid', 'Unix sockets with peer credentials need Linux; this platform has no process.getuid()');
  }
  return uid;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
