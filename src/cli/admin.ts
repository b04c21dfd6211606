import { BrokerClient } from '../broker/client.js';
import {
  SigningPrivateKey, SigningPublicKey, verifyConsumerCert, verifyDeviceCert, verifyPolicy, verifyRevocation,
  type ConsumerCertBody, type DeviceCertBody, type OrgTrust, type PolicyBody, type RevocationBody, type Verified,
} from '../protocol/index.js';
import { KeyFileError, readKeyFile } from '../local/keyfile.js';
import { checkPinnedOrg, readState, statePath, type AdminState } from '../local/state.js';
import type { CliIo } from './command.js';
import { CliError } from './errors.js';
import { nowSeconds } from './format.js';
import { readPassphrase } from './prompt.js';

/**
 * The admin side of the CLI: the pinned org in admin/org.json, the Org
 * Identity key (OIK) in admin/identity.key, and a broker client that
 * authenticated as the admin. Everything read back from the broker is
 * verified against the OIK before a command uses it.
 */

export const IDENTITY_KEY_LABEL = 'org-identity';

export function adminStatePath(io: CliIo): string {
  return statePath('admin', 'org.json', io.env);
}

export function identityKeyPath(io: CliIo): string {
  return statePath('admin', 'identity.key', io.env);
}

/** Reads admin/org.json, or fails with a hint to run `stillvault init`. */
export async function loadAdminState(io: CliIo): Promise<AdminState> {
  const file = adminStatePath(io);
  const state = await readState<AdminState>(file);
  if (state === undefined) {
    throw new CliError('not_initialized', `no admin identity in ${file}`, {
      hint: 'run `stillvault init --org NAME --broker URL` first, or set STILLVAULT_HOME to the admin home',
    });
  }
  checkPinnedOrg(state, file);
  return state;
}

export function trustOf(state: { org: string; identityKey: string }): OrgTrust {
  return { org: state.org, identityKey: SigningPublicKey.fromBase64Url(state.identityKey, 'pinned identity key') };
}

/** Decrypts the OIK with the passphrase. The caller must wipe the key. */
export async function unlockIdentityKey(io: CliIo, state: AdminState): Promise<SigningPrivateKey> {
  const passphrase = await readPassphrase(io, 'Passphrase for the Org Identity key: ');
  let seed: Uint8Array;
  try {
    seed = await readKeyFile(identityKeyPath(io), IDENTITY_KEY_LABEL, passphrase);
  } catch (error) {
    if (error instanceof KeyFileError) throw new CliError(error.code, error.message, { cause: error });
    throw error;
  }
  try {
    const key = await SigningPrivateKey.fromSeed('org-identity', seed);
    if (key.publicKey.fingerprint() !== state.org) {
      key.wipe();
      throw new CliError('untrusted_signer', `${identityKeyPath(io)} does not hold the key of org ${state.org}`);
    }
    return key;
  } finally {
    seed.fill(0);
  }
}

export interface AdminSession {
  state: AdminState;
  trust: OrgTrust;
  identityKey: SigningPrivateKey;
  client: BrokerClient;
  close(): void;
}

/** Loads the admin state, unlocks the OIK and authenticates to the broker as the admin. close() wipes the key. */
export async function openAdminSession(io: CliIo): Promise<AdminSession> {
  const state = await loadAdminState(io);
  const identityKey = await unlockIdentityKey(io, state);
  try {
    const client = new BrokerClient(state.broker, state.org);
    await client.authenticate('admin', state.org, identityKey);
    return { state, trust: trustOf(state), identityKey, client, close: () => { identityKey.wipe(); } };
  } catch (error) {
    identityKey.wipe();
    throw error;
  }
}

/** Runs `body` with an admin session and wipes the OIK afterwards, whatever happens. */
export async function withAdminSession<T>(io: CliIo, body: (session: AdminSession) => Promise<T>): Promise<T> {
  const session = await openAdminSession(io);
  try {
    return await body(session);
  } finally {
    session.close();
  }
}

export interface VerifiedMembers {
  devices: Verified<DeviceCertBody>[];
  consumers: Verified<ConsumerCertBody>[];
  revocations: Verified<RevocationBody>[];
  /** Certificates that failed verification (expired, revoked, forged), with the reason code. */
  rejected: { kind: 'device' | 'consumer'; id: string; name: string; code: string }[];
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'invalid_object';
}

/** Fetches certificates and revocations and keeps only what verifies against the OIK now. */
export async function loadVerifiedMembers(client: BrokerClient, trust: OrgTrust): Promise<VerifiedMembers> {
  const revocations: Verified<RevocationBody>[] = [];
  for (const revocation of await client.listRevocations()) {
    try {
      revocations.push(await verifyRevocation(revocation, trust));
    } catch {
      // A revocation that does not verify was not made by this org: ignore it.
    }
  }
  const { devices, consumers } = await client.listCertificates();
  const now = nowSeconds();
  const result: VerifiedMembers = { devices: [], consumers: [], revocations, rejected: [] };
  for (const cert of devices) {
    try {
      result.devices.push(await verifyDeviceCert(cert, trust, now, revocations));
    } catch (error) {
      result.rejected.push({ kind: 'device', id: cert.body.device, name: cert.body.name, code: errorCode(error) });
    }
  }
  for (const cert of consumers) {
    try {
      result.consumers.push(await verifyConsumerCert(cert, trust, now, revocations));
    } catch (error) {
      result.rejected.push({ kind: 'consumer', id: cert.body.consumer, name: cert.body.name, code: errorCode(error) });
    }
  }
  return result;
}

/** Fetches the latest policies and keeps those that verify against the OIK. */
export async function loadVerifiedPolicies(client: BrokerClient, trust: OrgTrust): Promise<Verified<PolicyBody>[]> {
  const verified: Verified<PolicyBody>[] = [];
  for (const policy of await client.listPolicies()) {
    verified.push(await verifyPolicy(policy, trust, { minVersion: 0 }));
  }
  return verified;
}

/**
 * Finds the one verified certificate with this name (or id). Two live
 * certificates with the same name are ambiguous, so the caller must use the id.
 */
export function findByName<T extends { body: { name: string } }>(certs: T[], name: string, idOf: (cert: T) => string, what: string): T {
  const byId = certs.find((cert) => idOf(cert) === name);
  if (byId !== undefined) return byId;
  const matches = certs.filter((cert) => cert.body.name === name);
  if (matches.length === 1 && matches[0] !== undefined) return matches[0];
  if (matches.length > 1) {
    throw new CliError('ambiguous_name', `${matches.length} ${what}s are named ${JSON.stringify(name)}`, {
      hint: `use the id instead: ${matches.map(idOf).join(', ')}`,
    });
  }
  throw new CliError('not_found', `no enrolled ${what} named ${JSON.stringify(name)} with a valid certificate`, {
    hint: `run \`stillvault ${what} list\` to see the enrolled ${what}s`,
  });
}
