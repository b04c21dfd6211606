import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, open } from 'node:fs/promises';
import { loadAddon } from './addon.js';
import { DaemonError, systemErrorCode } from './errors.js';

/**
 * Permission checks for the daemon socket: its private directory, the lock
 * file beside it and the socket file's mode. Every failure is fatal.
 */

/**
 * Creates `directory` with mode 0700 (0710 with a group), or checks an existing
 * one: it must be a real directory (not a symbolic link) owned by `uid`, with
 * no permission bits beyond that mode. Then sets the mode and group exactly.
 */
export async function preparePrivateDirectory(directory: string, uid: number, group: number | undefined): Promise<void> {
  const mode = group === undefined ? 0o700 : 0o710;
  await createDirectory(directory);

  let handle;
  try {
    handle = await open(directory, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (cause) {
    throw new DaemonError('socket_unsafe', `socket directory ${directory} is a symbolic link or not a directory (${systemErrorCode(cause) ?? 'unknown error'}); remove it or choose another socket path`, { cause });
  }

  try {
    const stat = await handle.stat();
    if (stat.uid !== uid) {
      throw new DaemonError('socket_unsafe', `socket directory ${directory} is owned by uid ${stat.uid}, expected uid ${uid}; remove it or choose another socket path`);
    }
    const extraBits = stat.mode & 0o777 & ~mode;
    if (extraBits !== 0) {
      throw new DaemonError('socket_unsafe', `socket directory ${directory} has mode ${octal(stat.mode)}, which gives other users access; expected ${octal(mode)}. Run \`chmod ${octal(mode)} ${directory}\` after checking its contents`);
    }
    try {
      if (group !== undefined) await handle.chown(uid, group);
      await handle.chmod(mode);
    } catch (cause) {
      throw new DaemonError('socket_permissions_failed', `setting mode ${octal(mode)}${group === undefined ? '' : ` and group ${group}`} on ${directory} failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
    }
  } finally {
    await handle.close();
  }
}

async function createDirectory(directory: string): Promise<void> {
  try {
    await mkdir(directory, { mode: 0o700 });
  } catch (cause) {
    const code = systemErrorCode(cause);
    if (code === 'EEXIST') return;
    if (code === 'ENOENT') {
      throw new DaemonError('socket_path_invalid', `the parent directory of ${directory} does not exist`, { cause });
    }
    throw new DaemonError('socket_permissions_failed', `creating socket directory ${directory} failed (${code ?? 'unknown error'})`, { cause });
  }
}

/** Opens and flocks the lock file; returns its descriptor, which holds the lock until closed. */
export function acquireLock(lockPath: string, socketPath: string, uid: number): number {
  let fd: number;
  try {
    fd = openSync(lockPath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (cause) {
    throw new DaemonError('socket_unsafe', `opening lock file ${lockPath} failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
  }

  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.uid !== uid) {
      throw new DaemonError('socket_unsafe', `lock file ${lockPath} is not a regular file owned by uid ${uid}; remove it`);
    }
    if (!loadAddon().tryLockExclusive(fd)) {
      throw new DaemonError('socket_in_use', `socket ${socketPath} is in use: another daemon has locked ${lockPath}; stop that daemon first`);
    }
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/** Sets mode 0600 (0660 and the group, with a group) on the bound socket and checks the result. */
export async function setSocketPermissions(path: string, uid: number, group: number | undefined): Promise<void> {
  const mode = group === undefined ? 0o600 : 0o660;
  try {
    if (group !== undefined) await chown(path, uid, group);
    await chmod(path, mode);
  } catch (cause) {
    throw new DaemonError('socket_permissions_failed', `setting mode ${octal(mode)}${group === undefined ? '' : ` and group ${group}`} on ${path} failed (${systemErrorCode(cause) ?? 'unknown error'})`, { cause });
  }

  const stat = await lstat(path);
  const groupMatches = group === undefined || stat.gid === group;
  if (!stat.isSocket() || stat.uid !== uid || (stat.mode & 0o777) !== mode || !groupMatches) {
    throw new DaemonError('socket_permissions_failed', `${path} has mode ${octal(stat.mode)}, owner ${stat.uid}:${stat.gid} after setup, expected ${octal(mode)}`);
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}
