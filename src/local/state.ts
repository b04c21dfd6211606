import path from 'node:path';
import { promises as fs } from 'node:fs';
import { fromBase64UrlExact, toBase64Url } from '../protocol/encoding.js';
import { fingerprintOf, SigningPrivateKey } from '../protocol/keys.js';
import type { Signed } from '../protocol/signed.js';
import type { AuditHeadRef, ConsumerCertBody, DeviceCertBody } from '../protocol/types.js';
import { ensurePrivateDirectory, readJsonFile, writeJsonFile } from './files.js';
import { roleDirectory } from './home.js';

/**
 * The files each role keeps under $STILLVAULT_HOME, and their formats. Every
 * file is JSON with `v: 1`, written atomically with mode 0600 in a 0700
 * directory.
 *
 *   admin/org.json            AdminState
 *   admin/identity.key        key file (label "org-identity"), the OIK seed
 *   admin/audit-head.json     AuditHeadState, the last audit head `audit verify` or `audit tail` accepted
 *   approver/device.json      ApproverState
 *   approver/device.key       key file (label "device-keys"): signing seed || sealing seed
 *   approver/seen.json        SeenState
 *   daemon/consumer.json      DaemonState
 *   daemon/host-key.json      HostKeyFile (plain seed, mode 0600: the daemon starts unattended)
 *   daemon/seen.json          SeenState
 */

export const STATE_VERSION = 1;

/** The pinned org, as every client keeps it. `org` is the fingerprint of `identityKey`. */
export interface PinnedOrg {
  org: string;
  orgName: string;
  identityKey: string;
  broker: string;
}

export interface AdminState extends PinnedOrg {
  v: 1;
  /** The broker's audit-head signing key (base64url Ed25519), pinned at init. */
  brokerKey?: string;
}

/** The newest audit head this admin machine verified, so a trimmed or rewritten log is noticed. */
export interface AuditHeadState {
  v: 1;
  head: AuditHeadRef;
}

export interface EnrollmentRef {
  id: string;
  code: string;
}

export interface ApproverState extends PinnedOrg {
  v: 1;
  /** Device id from the certificate; empty until the admin has signed it. */
  device: string;
  name: string;
  /** Public halves of the keys in device.key (base64url), to check the certificate the admin signs. */
  publicKeys?: { signingKey: string; sealingKey: string };
  enrollment: EnrollmentRef | null;
  certificate: Signed<DeviceCertBody> | null;
}

export interface DaemonState extends PinnedOrg {
  v: 1;
  /** Consumer id from the certificate; empty until the admin has signed it. */
  consumer: string;
  name: string;
  enrollment: EnrollmentRef | null;
  certificate: Signed<ConsumerCertBody> | null;
}

/** The versions and request ids a client remembers, to reject rollbacks and replays. */
export interface SeenState {
  v: 1;
  policyVersions: Record<string, number>;
  secretVersions: Record<string, number>;
  /** Request ids already decided or released, with the time they may be forgotten (after expiry). */
  requests: Record<string, number>;
  auditHead: AuditHeadRef | null;
}

export interface HostKeyFile {
  v: 1;
  kind: 'stillvault-host-key';
  seed: string;
}

export function statePath(role: 'admin' | 'approver' | 'daemon', file: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(roleDirectory(role, env), file);
}

/** Checks that a pinned org's id is the fingerprint of its identity key. */
export function checkPinnedOrg(state: PinnedOrg, file: string): void {
  const key = fromBase64UrlExact(state.identityKey, 32, `${file} identityKey`);
  if (fingerprintOf(key) !== state.org) {
    throw new Error(`${file}: org ${state.org} is not the fingerprint of the pinned identity key`);
  }
}

/** Reads a role's state file; returns undefined when the role is not set up on this machine. */
export async function readState<T extends { v: number }>(file: string): Promise<T | undefined> {
  const value = (await readJsonFile(file)) as T | undefined;
  if (value === undefined) return undefined;
  if (value.v !== STATE_VERSION) {
    throw new Error(`${file} has format version ${String(value.v)}, this stillvault reads version ${STATE_VERSION}`);
  }
  return value;
}

export async function writeState(file: string, value: { v: number }): Promise<void> {
  await ensurePrivateDirectory(path.dirname(file));
  await writeJsonFile(file, value);
}

export function emptySeenState(): SeenState {
  return { v: 1, policyVersions: {}, secretVersions: {}, requests: {}, auditHead: null };
}

/** Creates a host signing key file (mode 0600) and returns the key. */
export async function createHostKey(file: string): Promise<SigningPrivateKey> {
  const key = await SigningPrivateKey.generate('consumer-host');
  const seed = key.exportSeed();
  try {
    const contents: HostKeyFile = { v: 1, kind: 'stillvault-host-key', seed: toBase64Url(seed) };
    await writeState(file, contents);
  } finally {
    seed.fill(0);
  }
  return key;
}

/** Loads the host signing key, refusing a file that other users own or can read. */
export async function loadHostKey(file: string): Promise<SigningPrivateKey> {
  const stat = await fs.stat(file);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) {
    throw new Error(`${file} is owned by uid ${stat.uid}; it must belong to uid ${uid} or root`);
  }
  if ((stat.mode & 0o077) !== 0) {
    throw new Error(`${file} is readable by other users (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 ${file}`);
  }
  const contents = await readState<HostKeyFile>(file);
  if (contents?.kind !== 'stillvault-host-key') throw new Error(`${file} is not a Stillvault host key file`);
  const seed = fromBase64UrlExact(contents.seed, 32, `${file} seed`);
  try {
    return await SigningPrivateKey.fromSeed('consumer-host', seed);
  } finally {
    seed.fill(0);
  }
}
