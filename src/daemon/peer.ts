import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { loadAddon } from './addon.js';
import { DaemonError, systemErrorCode } from './errors.js';

/**
 * The process at the other end of a daemon socket connection. The kernel
 * vouches for uid, gid and pid (SO_PEERCRED) and for exe and startTime
 * (/proc). The process itself can rewrite cmdline, so show it to a human but
 * never base a decision on it.
 */
export interface CallerIdentity {
  uid: number;
  gid: number;
  /** Supplementary groups from /proc/PID/status. */
  groups: number[];
  /** Login name of `uid`, or null when the user database has no entry for it. */
  user: string | null;
  pid: number;
  /** Resolved path of the running executable. For a script, this is the interpreter. */
  exe: string;
  cmdline: string[];
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat). */
  startTime: number;
  /** SHA-256 (lowercase hex) of the executable's content, when requested. */
  exeSha256?: string;
}

/** A peer whose credentials were read. The pidfd, when present, pins the process against pid reuse. */
export interface PinnedPeer {
  uid: number;
  gid: number;
  pid: number;
  pidfd: number | null;
}

export interface IdentifyOptions {
  /** Hash the executable, for rules with exeSha256. Reads the whole file. */
  hashExe?: boolean;
}

const DELETED_SUFFIX = ' (deleted)';
const STAT_START_TIME_INDEX = 19; // field 22 counted from field 3, the first after the ')' of comm

/**
 * Returns the file descriptor of a socket accepted by a net.Server on a Unix
 * path. Node.js exposes it only on the internal `_handle`.
 */
export function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: unknown })._handle;
  const fd = typeof handle === 'object' && handle !== null ? (handle as { fd?: unknown }).fd : undefined;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new DaemonError('caller_unidentified', 'socket has no file descriptor: it is closed or is not a Unix socket');
  }
  return fd;
}

/**
 * Reads the peer's credentials and a pidfd, synchronously. Call it in the
 * server's 'connection' handler: once the client exits, Node.js closes the
 * socket and the credentials can no longer be read. The caller owns the pidfd
 * and must pass the result to resolveCaller, which closes it.
 */
export function pinPeer(socket: Socket): PinnedPeer {
  const addon = loadAddon();
  const fd = socketFd(socket);

  let credentials;
  try {
    credentials = addon.peerCred(fd);
  } catch (cause) {
    throw new DaemonError('caller_unidentified', `reading the peer credentials failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
  }

  let pidfd: number | null;
  try {
    pidfd = credentials.pid === 0 ? null : addon.peerPidfd(fd);
  } catch (cause) {
    if (systemErrorCode(cause) === 'ESRCH') {
      throw new DaemonError('caller_gone', `caller pid ${credentials.pid} exited before it was identified`, { cause });
    }
    throw new DaemonError('caller_unidentified', `pinning caller pid ${credentials.pid} failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
  }
  return { ...credentials, pidfd };
}

/**
 * Identifies the process at the other end of `socket`. The synchronous part
 * (pinPeer) runs before this function first awaits, so calling it inside the
 * 'connection' handler is enough. Throws DaemonError with code caller_gone,
 * caller_unidentified or caller_untrusted_exe.
 */
export async function identifyCaller(socket: Socket, options: IdentifyOptions = {}): Promise<CallerIdentity> {
  const peer = pinPeer(socket);
  return resolveCaller(peer, options);
}

/**
 * Reads the pinned peer's executable, command line and start time from /proc,
 * then checks that the same process is still running, so no read can have
 * come from a process that reused the pid. Always closes the pidfd.
 */
export async function resolveCaller(peer: PinnedPeer, options: IdentifyOptions = {}): Promise<CallerIdentity> {
  try {
    return await readCaller(peer, options);
  } finally {
    if (peer.pidfd !== null) loadAddon().closeFd(peer.pidfd);
  }
}

async function readCaller(peer: PinnedPeer, options: IdentifyOptions): Promise<CallerIdentity> {
  const { pid } = peer;
  if (pid === 0) {
    throw new DaemonError('caller_unidentified', 'caller is in another pid namespace (SO_PEERCRED reported pid 0)');
  }
  // NOTE: without SO_PEERPIDFD (Linux before 6.5) the pid can be reused between
  // connect() and this first read, and the start time check cannot notice that.

  const startTime = await readProc(peer, 'stat', () => readStartTime(pid));
  const exe = await readProc(peer, 'exe', () => readlink(`/proc/${pid}/exe`));
  if (exe.endsWith(DELETED_SUFFIX)) {
    throw new DaemonError('caller_untrusted_exe', `caller pid ${pid} runs ${exe}: the executable was deleted or replaced since it started; restart the process`);
  }
  const cmdline = await readProc(peer, 'cmdline', async () => parseCmdline(await readFile(`/proc/${pid}/cmdline`)));
  const groups = await readProc(peer, 'status', async () => parseGroups(await readFile(`/proc/${pid}/status`, 'utf8')));
  const exeSha256 = options.hashExe === true ? await readProc(peer, 'exe', () => hashFile(`/proc/${pid}/exe`)) : undefined;

  await checkSameProcess(peer, startTime);

  const user = lookupUserName(peer.uid);
  const identity: CallerIdentity = { uid: peer.uid, gid: peer.gid, groups, user, pid, exe, cmdline, startTime };
  if (exeSha256 !== undefined) identity.exeSha256 = exeSha256;
  return identity;
}

/** Throws caller_gone unless the pinned process is still running with the same start time. */
async function checkSameProcess(peer: PinnedPeer, startTime: number): Promise<void> {
  const startTimeNow = await readProc(peer, 'stat', () => readStartTime(peer.pid));
  if (startTimeNow !== startTime) {
    throw new DaemonError('caller_gone', `caller pid ${peer.pid} was replaced by another process during identification`);
  }
  // The liveness check comes last: if the pinned process still runs now, its
  // pid was never free, so every /proc read above described it.
  if (hasExited(peer)) {
    throw new DaemonError('caller_gone', `caller pid ${peer.pid} exited before it was identified`);
  }
}

function lookupUserName(uid: number): string | null {
  try {
    return loadAddon().lookupUserById(uid);
  } catch (cause) {
    throw new DaemonError('caller_unidentified', `looking up the user name of uid ${uid} failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
  }
}

function hasExited(peer: PinnedPeer): boolean {
  if (peer.pidfd === null) return false;
  const addon = loadAddon();
  return !addon.pidfdSendSignal0(peer.pidfd) || addon.pidfdHasExited(peer.pidfd);
}

/** Runs one /proc read and turns its failure into caller_gone or caller_unidentified. */
async function readProc<T>(peer: PinnedPeer, entry: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (cause) {
    if (cause instanceof DaemonError) throw cause;
    const code = systemErrorCode(cause);
    const file = `/proc/${peer.pid}/${entry}`;
    // A process that exited loses its /proc entries (a zombie keeps stat but not exe).
    if ((code === 'ENOENT' || code === 'ESRCH') && (peer.pidfd === null || hasExited(peer) || isZombie(peer.pid))) {
      throw new DaemonError('caller_gone', `caller pid ${peer.pid} exited before it was identified`, { cause });
    }
    throw new DaemonError('caller_unidentified', `reading ${file} failed (${code ?? 'unknown error'}); the daemon must run as the caller's user or see its /proc entries`, { cause });
  }
}

/**
 * Reports whether the process has exited but was not reaped yet (state Z or
 * X in /proc/PID/stat). A pidfd may not show the exit at once, and a zombie
 * has lost its exe link but still has stat.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false;
  }
}

async function readStartTime(pid: number): Promise<number> {
  return parseStartTime(await readFile(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * Returns the start time (field 22) of a /proc/PID/stat line. Field 2, the
 * command name, may contain spaces and parentheses, so parsing starts after
 * its last ')'.
 */
export function parseStartTime(stat: string): number {
  const commEnd = stat.lastIndexOf(')');
  const fields = commEnd < 0 ? [] : stat.slice(commEnd + 1).trim().split(' ');
  const field = fields[STAT_START_TIME_INDEX];
  if (field === undefined || !/^\d+$/.test(field)) {
    throw new DaemonError('caller_unidentified', 'invalid /proc/PID/stat: no start time in field 22');
  }
  return Number(field);
}

/** Splits /proc/PID/cmdline at NUL bytes. Invalid UTF-8 becomes U+FFFD. */
export function parseCmdline(raw: Buffer): string[] {
  const text = raw.toString('utf8');
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/** Returns the supplementary group ids on the "Groups:" line of /proc/PID/status. */
export function parseGroups(status: string): number[] {
  const line = status.split('\n').find((candidate) => candidate.startsWith('Groups:'));
  if (line === undefined) return [];
  return line
    .slice('Groups:'.length)
    .trim()
    .split(/\s+/)
    .filter((group) => group !== '')
    .map(Number);
}

/** Hashes /proc/PID/exe, which opens the binary the process runs even when its path now names another file. */
async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
