import type { BrokerClient } from '../../broker/client.js';
import {
  buildSecretTombstone, buildSecretVersion, checkSecretPath, isPolicyApprover, MAX_SECRET_BYTES, parseSecretBody, policyCoversPath, ProtocolError,
  SecretBytes, verifySigned, type OrgTrust, type PolicyBody, type SecretBody, type Verified,
} from '../../protocol/index.js';
import { loadVerifiedMembers, loadVerifiedPolicies, withAdminSession, type AdminSession } from '../admin.js';
import { fetchAuditEntries } from '../audit-log.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { formatTime, nowSeconds, parseFormat, writeJson, writeTable } from '../format.js';
import { readAllStdin, readHidden } from '../prompt.js';

const SET_USAGE = 'stillvault secret set PATH [--policy NAME]   (value on stdin, or typed at a hidden prompt)';
const LIST_USAGE = 'stillvault secret list [--format table|json]';
const HISTORY_USAGE = 'stillvault secret history PATH [--format table|json]';
const RM_USAGE = 'stillvault secret rm PATH [--policy NAME]';
const PATHS_PER_REQUEST = 50;

/** Checks a secret's OIK signature and exact shape; returns its body. Policy checks are the approvers' job. */
async function verifiedSecretBody(value: unknown, trust: OrgTrust): Promise<SecretBody> {
  const signed = await verifySigned(value, 'secret', trust.org, trust.identityKey);
  return parseSecretBody(signed.body);
}

/**
 * Returns every secret path's history from the audit log, since the broker
 * has no endpoint listing paths: each `secret-stored` entry carries the
 * OIK-signed version. Versions whose signature fails are dropped.
 */
export async function secretHistory(client: BrokerClient, trust: OrgTrust): Promise<Map<string, SecretBody[]>> {
  const history = new Map<string, SecretBody[]>();
  for (const { entry } of await fetchAuditEntries(client)) {
    if (entry.type !== 'secret-stored' || entry.object === null) continue;
    let body: SecretBody;
    try {
      body = await verifiedSecretBody(entry.object, trust);
    } catch {
      continue;
    }
    const versions = history.get(body.path) ?? [];
    versions.push(body);
    history.set(body.path, versions);
  }
  return history;
}

/** Returns the latest stored version of every path, as the broker serves it, signature-checked. */
export async function latestSecrets(client: BrokerClient, trust: OrgTrust): Promise<SecretBody[]> {
  const paths = [...(await secretHistory(client, trust)).keys()].sort();
  const latest: SecretBody[] = [];
  for (let start = 0; start < paths.length; start += PATHS_PER_REQUEST) {
    for (const secret of await client.getSecrets(paths.slice(start, start + PATHS_PER_REQUEST))) {
      latest.push(await verifiedSecretBody(secret, trust));
    }
  }
  return latest;
}

async function latestVersion(session: AdminSession, path: string): Promise<SecretBody | undefined> {
  const [secret] = await session.client.getSecrets([path]);
  return secret === undefined ? undefined : verifiedSecretBody(secret, session.trust);
}

function choosePolicy(policies: Verified<PolicyBody>[], path: string, name: string | undefined): Verified<PolicyBody> {
  if (name !== undefined) {
    const named = policies.find((policy) => policy.body.name === name);
    if (named === undefined) throw new CliError('not_found', `no policy named ${JSON.stringify(name)}`, { hint: 'run `stillvault policy list`' });
    if (!policyCoversPath(named.body, path)) {
      throw new CliError('policy_mismatch', `policy ${name} does not cover ${path}`, { hint: `add a matching glob: stillvault policy set ${name} --paths ...` });
    }
    return named;
  }
  const covering = policies.filter((policy) => policyCoversPath(policy.body, path));
  const [only] = covering;
  if (only === undefined) {
    throw new CliError('no_policy', `no policy covers ${path}`, { hint: 'create one first: stillvault policy set NAME --paths GLOB --approvers NAME' });
  }
  if (covering.length > 1) {
    throw new CliError('ambiguous_policy', `${covering.length} policies cover ${path}: ${covering.map((policy) => policy.body.name).join(', ')}`, {
      hint: 'choose one with --policy NAME',
    });
  }
  return only;
}

function pathArgument(positionals: string[], usage: string): string {
  const [path, ...rest] = positionals;
  if (path === undefined || rest.length > 0) throw usageError('expected exactly one secret PATH', `usage: ${usage}`);
  try {
    return checkSecretPath(path);
  } catch (error) {
    throw usageError(`invalid secret path ${JSON.stringify(path)}: ${(error as Error).message}`, 'a path is segments of [A-Za-z0-9._-] joined by /, for example prod/db-primary');
  }
}

/** Reads the value from stdin (exact bytes) or from a hidden prompt on a terminal. The caller wipes it. */
async function readValue(io: CliIo): Promise<Buffer> {
  if (io.stdin.isTTY === true) {
    // NOTE: the prompt returns a JavaScript string, which cannot be wiped; pipe the value in to keep it in a Buffer only.
    return Buffer.from(await readHidden(io, 'Secret value (input hidden): '), 'utf8');
  }
  return readAllStdin(io, MAX_SECRET_BYTES);
}

async function set(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { policy: { type: 'string' } }, SET_USAGE);
  const path = pathArgument(positionals, SET_USAGE);
  const value = await readValue(io);
  const plaintext = SecretBytes.adopt(value);
  try {
    if (plaintext.length === 0) throw new CliError('value_missing', 'the secret value is empty', { hint: `pipe it in: printf %s "$VALUE" | stillvault secret set ${path}` });
    const stored = await withAdminSession(io, async (session) => {
      const policy = choosePolicy(await loadVerifiedPolicies(session.client, session.trust), path, values.policy);
      const members = await loadVerifiedMembers(session.client, session.trust);
      const devices = members.devices.filter((cert) => isPolicyApprover(policy.body, cert.body.device));
      const missing = policy.body.approvers.filter((id) => !devices.some((cert) => cert.body.device === id));
      if (devices.length === 0) {
        throw new CliError('no_approver', `no approver of policy ${policy.body.name} has a valid certificate`, { hint: 'enroll an approver and run `stillvault policy set` again' });
      }
      if (missing.length > 0) io.stderr.write(`warning: not granting to approvers without a valid certificate: ${missing.join(', ')}\n`);

      const version = ((await latestVersion(session, path))?.version ?? 0) + 1;
      const secret = await buildSecretVersion(session.identityKey, { policy, devices, path, version, created: nowSeconds(), plaintext });
      await session.client.putSecret(secret);
      return { version, policy: policy.body.name, approvers: devices.map((cert) => cert.body.name) };
    });
    io.stderr.write(`Stored ${path} version ${stored.version} under policy ${stored.policy}, sealed to ${stored.approvers.join(', ')}.\n`);
    io.stdout.write(`${path} v${stored.version}\n`);
    return 0;
  } catch (error) {
    if (error instanceof ProtocolError) throw new CliError(error.code, `cannot store ${path}: ${error.message}`);
    throw error;
  } finally {
    plaintext.wipe();
  }
}

async function remove(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { policy: { type: 'string' } }, RM_USAGE);
  const path = pathArgument(positionals, RM_USAGE);
  const version = await withAdminSession(io, async (session) => {
    const latest = await latestVersion(session, path);
    if (latest === undefined) throw new CliError('not_found', `no secret at ${path}`, { hint: 'run `stillvault secret list`' });
    if (latest.deleted) throw new CliError('secret_deleted', `${path} is already deleted (version ${latest.version})`);
    const policy = choosePolicy(await loadVerifiedPolicies(session.client, session.trust), path, values.policy ?? latest.policy.name);
    const tombstone = await buildSecretTombstone(session.identityKey, { policy, path, version: latest.version + 1, created: nowSeconds() });
    await session.client.putSecret(tombstone);
    return latest.version + 1;
  });
  io.stderr.write(`Deleted ${path}: version ${version} is a tombstone; older versions can no longer be released.\n`);
  io.stdout.write(`${path} v${version}\n`);
  return 0;
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { format: { type: 'string' } }, LIST_USAGE, false);
  const format = parseFormat(values.format);
  const { secrets, names } = await withAdminSession(io, async (session) => {
    const members = await loadVerifiedMembers(session.client, session.trust);
    return {
      secrets: await latestSecrets(session.client, session.trust),
      names: new Map(members.devices.map((cert) => [cert.body.device, cert.body.name])),
    };
  });
  const rows = secrets.map((secret) => ({
    path: secret.path, version: secret.version, policy: `${secret.policy.name} v${secret.policy.version}`, deleted: secret.deleted, created: secret.created,
    grantedTo: secret.grants.map((grant) => names.get(grant.device) ?? grant.device),
  }));
  if (format === 'json') {
    writeJson(io, rows);
    return 0;
  }
  writeTable(io, ['PATH', 'VERSION', 'POLICY', 'STATUS', 'CREATED', 'SEALED TO'], rows.map((row) => [
    row.path, String(row.version), row.policy, row.deleted ? 'deleted' : 'live', formatTime(row.created), row.grantedTo.join(','),
  ]), 'no secrets');
  return 0;
}

async function history(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { format: { type: 'string' } }, HISTORY_USAGE);
  const format = parseFormat(values.format);
  const path = pathArgument(positionals, HISTORY_USAGE);
  const versions = await withAdminSession(io, async (session) => (await secretHistory(session.client, session.trust)).get(path) ?? []);
  const rows = versions.map((secret) => ({
    version: secret.version, policy: `${secret.policy.name} v${secret.policy.version}`, deleted: secret.deleted, created: secret.created, grants: secret.grants.length,
  }));
  if (format === 'json') {
    writeJson(io, rows);
    return 0;
  }
  writeTable(io, ['VERSION', 'POLICY', 'STATUS', 'CREATED', 'GRANTS'], rows.map((row) => [
    String(row.version), row.policy, row.deleted ? 'deleted' : 'live', formatTime(row.created), String(row.grants),
  ]), `no versions of ${path}`);
  return 0;
}

export const secretCommands: Command[] = [
  { name: ['secret', 'set'], summary: 'encrypt a new secret version on this machine and store it (value on stdin or a hidden prompt)', usage: SET_USAGE, run: set },
  { name: ['secret', 'list'], summary: 'list secret paths with their latest version', usage: LIST_USAGE, run: list },
  { name: ['secret', 'history'], summary: 'list every stored version of one secret path', usage: HISTORY_USAGE, run: history },
  { name: ['secret', 'rm'], summary: 'delete a secret by storing a tombstone version', usage: RM_USAGE, run: remove },
];
