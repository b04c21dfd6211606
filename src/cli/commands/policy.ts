import { checkPathGlob, ProtocolError, signPolicy, type RequesterRule } from '../../protocol/index.js';
import { findByName, loadVerifiedMembers, loadVerifiedPolicies, withAdminSession, type VerifiedMembers } from '../admin.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, USAGE_EXIT_CODE, usageError } from '../errors.js';
import { formatDuration, MAX_LEASE_SECONDS, nowSeconds, parseDuration, parseFormat, writeJson, writeTable } from '../format.js';
import { latestSecrets } from './secret.js';

const SET_USAGE = 'stillvault policy set NAME --paths GLOB[,GLOB] --approvers NAME[,NAME] [--quorum 1] [--max-lease 15m] [--consumers NAME[,NAME]|*] [--requesters RULE]...';
const LIST_USAGE = 'stillvault policy list [--format table|json]';

function splitList(text: string): string[] {
  return text.split(',').map((item) => item.trim()).filter((item) => item !== '');
}

/**
 * Parses one --requesters rule: `any`, or comma-separated `user=NAME`,
 * `uid=N` and `exe=/ABSOLUTE/PATH` items. Repeating a key lists alternatives;
 * different keys must all match.
 */
export function parseRequesterRule(text: string): RequesterRule {
  if (text.trim() === 'any') return {};
  const rule: RequesterRule = {};
  for (const item of splitList(text)) {
    const [key, ...valueParts] = item.split('=');
    const value = valueParts.join('=');
    if (value === '') throw usageError(`invalid --requesters item ${JSON.stringify(item)}: expected user=NAME, uid=N or exe=/PATH`);
    if (key === 'user') (rule.users ??= []).push(value);
    else if (key === 'uid') {
      if (!/^\d{1,10}$/.test(value) || Number(value) > 2 ** 32 - 1) throw usageError(`invalid uid ${JSON.stringify(value)} in --requesters`);
      (rule.uids ??= []).push(Number(value));
    } else if (key === 'exe') {
      if (!value.startsWith('/')) throw usageError(`exe in --requesters must be an absolute path, got ${JSON.stringify(value)}`);
      (rule.exes ??= []).push(value);
    } else throw usageError(`unknown --requesters key ${JSON.stringify(key)}: expected user, uid or exe`);
  }
  return rule;
}

function resolveConsumers(io: CliIo, members: VerifiedMembers, option: string | undefined): string[] {
  if (option === undefined || option.trim() === '*') {
    const ids = members.consumers.map((cert) => cert.body.consumer);
    // NOTE: protocol v1 policies list consumer ids, so `*` means the daemons enrolled now; later daemons need `policy set` again.
    io.stderr.write(`Consumers: all ${ids.length} daemons enrolled now (${members.consumers.map((cert) => cert.body.name).join(', ') || 'none'}).\n`);
    if (ids.length === 0) io.stderr.write('warning: no daemon is enrolled, so no request can use this policy yet.\n');
    return ids;
  }
  return splitList(option).map((name) => findByName(members.consumers, name, (cert) => cert.body.consumer, 'daemon').body.consumer);
}

async function set(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    paths: { type: 'string' }, approvers: { type: 'string' }, quorum: { type: 'string' }, 'max-lease': { type: 'string' },
    consumers: { type: 'string' }, requesters: { type: 'string', multiple: true },
  }, SET_USAGE);
  const [name, ...rest] = positionals;
  if (name === undefined || rest.length > 0) throw usageError('expected exactly one policy NAME', `usage: ${SET_USAGE}`);
  if (values.paths === undefined) throw usageError('missing --paths GLOB[,GLOB]', `usage: ${SET_USAGE}`);
  if (values.approvers === undefined) throw usageError('missing --approvers NAME[,NAME]', `usage: ${SET_USAGE}`);
  const paths = splitList(values.paths);
  for (const glob of paths) {
    try {
      checkPathGlob(glob);
    } catch (error) {
      throw usageError(`invalid path glob ${JSON.stringify(glob)}: ${(error as Error).message}`, 'globs are segments of [A-Za-z0-9._-] joined by /, where * matches inside a segment and ** matches whole segments');
    }
  }
  const quorum = values.quorum === undefined ? 1 : Number(values.quorum);
  if (!Number.isSafeInteger(quorum) || quorum < 1) throw usageError(`invalid --quorum ${JSON.stringify(values.quorum)}: expected a whole number of at least 1`);
  if (quorum > 1) {
    throw new CliError('not_implemented', `--quorum ${quorum}: quorum above 1 is not supported yet`, {
      hint: 'use --quorum 1, so any one listed approver decides',
      exitCode: USAGE_EXIT_CODE,
    });
  }
  const maxLeaseSeconds = parseDuration(values['max-lease'] ?? '15m', '--max-lease', MAX_LEASE_SECONDS);
  const requesters = (values.requesters ?? ['any']).map(parseRequesterRule);

  const stored = await withAdminSession(io, async (session) => {
    const members = await loadVerifiedMembers(session.client, session.trust);
    const approvers = splitList(values.approvers ?? '').map((approver) => findByName(members.devices, approver, (cert) => cert.body.device, 'approver').body.device);
    const consumers = resolveConsumers(io, members, values.consumers);
    const current = (await loadVerifiedPolicies(session.client, session.trust)).find((policy) => policy.body.name === name);
    const version = (current?.body.version ?? 0) + 1;
    let policy;
    try {
      policy = await signPolicy(session.identityKey, {
        name, version, paths, approvers: [...new Set(approvers)], quorum, maxLeaseSeconds, consumers: [...new Set(consumers)], requesters, issued: nowSeconds(),
      });
    } catch (error) {
      if (error instanceof ProtocolError) throw new CliError(error.code, `invalid policy: ${error.message}`);
      throw error;
    }
    await session.client.putPolicy(policy);

    const stale = (await latestSecrets(session.client, session.trust)).filter((secret) => secret.policy.name === name && !secret.deleted);
    return { version, stale: stale.map((secret) => secret.path) };
  });
  io.stderr.write(`Policy ${name} is now version ${stored.version}.\n`);
  if (stored.stale.length > 0) {
    io.stderr.write(`These secrets were sealed under an older version and approvers will refuse them until you set them again:\n  ${stored.stale.join('\n  ')}\n`);
  }
  io.stdout.write(`${name} v${stored.version}\n`);
  return 0;
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { format: { type: 'string' } }, LIST_USAGE, false);
  const format = parseFormat(values.format);
  const { policies, members } = await withAdminSession(io, async (session) => ({
    policies: await loadVerifiedPolicies(session.client, session.trust),
    members: await loadVerifiedMembers(session.client, session.trust),
  }));
  const deviceName = (id: string): string => members.devices.find((cert) => cert.body.device === id)?.body.name ?? `${id} (no valid certificate)`;
  const consumerName = (id: string): string => members.consumers.find((cert) => cert.body.consumer === id)?.body.name ?? `${id} (no valid certificate)`;
  if (format === 'json') {
    writeJson(io, policies.map((policy) => ({
      ...policy.body, approverNames: policy.body.approvers.map(deviceName), consumerNames: policy.body.consumers.map(consumerName),
    })));
    return 0;
  }
  writeTable(io, ['NAME', 'VERSION', 'PATHS', 'APPROVERS', 'QUORUM', 'MAX LEASE', 'CONSUMERS'], policies.map((policy) => [
    policy.body.name, String(policy.body.version), policy.body.paths.join(','), policy.body.approvers.map(deviceName).join(','),
    String(policy.body.quorum), formatDuration(policy.body.maxLeaseSeconds), policy.body.consumers.map(consumerName).join(','),
  ]), 'no policies');
  return 0;
}

export const policyCommands: Command[] = [
  { name: ['policy', 'set'], summary: 'create or update a policy: who approves which paths for which daemons', usage: SET_USAGE, run: set },
  { name: ['policy', 'list'], summary: 'list the latest version of each policy', usage: LIST_USAGE, run: list },
];
