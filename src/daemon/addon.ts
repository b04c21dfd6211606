import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonError } from './errors.js';

/** Credentials that SO_PEERCRED reports: the peer's ids when it called connect(). */
export interface PeerCredentials {
  uid: number;
  gid: number;
  /** 0 when the peer is in a pid namespace that this process cannot see. */
  pid: number;
}

/** Functions of native/peercred.c. Each throws an Error whose `code` is the errno name. */
export interface PeercredAddon {
  peerCred(fd: number): PeerCredentials;
  /** A pidfd for the peer, or null when the kernel lacks SO_PEERPIDFD (before Linux 6.5). */
  peerPidfd(fd: number): number | null;
  /** False once the process has been reaped. A zombie still returns true. */
  pidfdSendSignal0(pidfd: number): boolean;
  /** True once the process has exited, zombie or reaped. */
  pidfdHasExited(pidfd: number): boolean;
  closeFd(fd: number): void;
  /** flock(LOCK_EX | LOCK_NB): false when another open file description holds the lock. */
  tryLockExclusive(fd: number): boolean;
  lookupUserByName(name: string): { uid: number; gid: number } | null;
  lookupUserById(uid: number): string | null;
  /** Sets RLIMIT_CORE to 0 and clears the dumpable flag, so no core file or same-user ptrace can read this process. */
  protectMemory(): void;
  isDumpable(): boolean;
}

const PACKAGE_NAME = 'stillvault';
const ADDON_PATH = join('build', 'Release', 'peercred.node');
const ADDON_FUNCTIONS: readonly (keyof PeercredAddon)[] = [
  'peerCred',
  'peerPidfd',
  'pidfdSendSignal0',
  'pidfdHasExited',
  'closeFd',
  'tryLockExclusive',
  'lookupUserByName',
  'lookupUserById',
  'protectMemory',
  'isDumpable',
];

let loaded: PeercredAddon | undefined;

/**
 * Loads build/Release/peercred.node from the package root, once. The same
 * lookup works from src/ (tests) and dist/ (the built package).
 */
export function loadAddon(): PeercredAddon {
  if (loaded !== undefined) return loaded;

  const root = findPackageRoot(dirname(fileURLToPath(import.meta.url)));
  const file = join(root, ADDON_PATH);
  if (!existsSync(file)) {
    throw new DaemonError('addon_missing', `native addon not found at ${file}; build it with \`npm run build:native\` (needs a C compiler, make and python3)`);
  }

  const require = createRequire(import.meta.url);
  let addon: unknown;
  try {
    addon = require(file);
  } catch (cause) {
    throw new DaemonError('addon_missing', `native addon ${file} failed to load; rebuild it with \`npm run build:native\``, { cause });
  }
  loaded = checkAddon(addon, file);
  return loaded;
}

/** Walks up from `start` to the directory whose package.json names this package. */
export function findPackageRoot(start: string): string {
  let directory = start;
  for (;;) {
    const manifest = join(directory, 'package.json');
    if (existsSync(manifest) && readPackageName(manifest) === PACKAGE_NAME) {
      return directory;
    }
    const parent = dirname(directory);
    if (parent === directory) {
      throw new DaemonError('addon_missing', `no package.json named "${PACKAGE_NAME}" found above ${start}`);
    }
    directory = parent;
  }
}

function readPackageName(manifest: string): unknown {
  try {
    const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
    return parsed.name;
  } catch {
    return undefined;
  }
}

/** Rejects an addon built from an older native/peercred.c that lacks a function. */
function checkAddon(addon: unknown, file: string): PeercredAddon {
  for (const name of ADDON_FUNCTIONS) {
    const member: unknown = typeof addon === 'object' && addon !== null ? (addon as Record<string, unknown>)[name] : undefined;
    if (typeof member !== 'function') {
      throw new DaemonError('addon_missing', `native addon ${file} has no function ${name}; rebuild it with \`npm run build:native\``);
    }
  }
  return addon as PeercredAddon;
}
