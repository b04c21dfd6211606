import { createRevocation } from '../../protocol/index.js';
import { loadVerifiedMembers, withAdminSession } from '../admin.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { formatDuration, formatTime, nowSeconds, parseFormat, writeJson, writeTable } from '../format.js';

const LIST_USAGE = 'stillvault lease list [--format table|json]';
const REVOKE_USAGE = 'stillvault lease revoke ID [--reason TEXT]';

/** Lists the org's leases that have not ended, with names from verified certificates. */
async function list(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { format: { type: 'string' } }, LIST_USAGE, false);
  const format = parseFormat(values.format);
  const rows = await withAdminSession(io, async (session) => {
    const leases = await session.client.listLeases();
    const members = await loadVerifiedMembers(session.client, session.trust);
    const deviceName = (id: string): string => members.devices.find((cert) => cert.body.device === id)?.body.name ?? id;
    const consumerName = (id: string): string => members.consumers.find((cert) => cert.body.consumer === id)?.body.name ?? id;
    return leases.map((lease) => ({ ...lease, approvedByName: deviceName(lease.approvedBy), consumerName: consumerName(lease.consumer) }));
  });
  if (format === 'json') {
    writeJson(io, rows);
    return 0;
  }
  const now = nowSeconds();
  writeTable(io, ['ID', 'PATHS', 'HOST', 'USER', 'EXECUTABLE', 'APPROVED BY', 'ENDS', 'STATE'], rows.map((lease) => [
    lease.id, lease.paths.join(','), lease.consumerName, `${lease.user} (${lease.uid})`, lease.exe, lease.approvedByName,
    `${formatTime(lease.expires)} (in ${formatDuration(Math.max(0, lease.expires - now))})`, lease.revoked ? 'revoked' : 'active',
  ]), 'no active leases');
  return 0;
}

/** Signs a lease revocation with the Org Identity key; the broker relays it to the daemon, which wipes the values. */
async function revoke(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { reason: { type: 'string' } }, REVOKE_USAGE);
  const [id, ...rest] = positionals;
  if (id === undefined || rest.length > 0) throw usageError('expected exactly one lease ID', `usage: ${REVOKE_USAGE}`);
  await withAdminSession(io, async (session) => {
    const leases = await session.client.listLeases();
    const lease = leases.find((item) => item.id === id);
    if (lease === undefined) {
      throw new CliError('lease_not_found', `no active lease ${id}`, { hint: 'run `stillvault lease list` to see active leases' });
    }
    const revocation = await createRevocation(session.identityKey, { subject: 'lease', id, reason: values.reason ?? '', revoked: nowSeconds() });
    await session.client.putRevocation(revocation);
  });
  io.stderr.write(`Revoked lease ${id}; the daemon holding it wipes the values when it receives the revocation.\n`);
  return 0;
}

export const leaseCommands: Command[] = [
  { name: ['lease', 'list'], summary: 'list active leases: which process holds which secrets until when', usage: LIST_USAGE, run: list },
  { name: ['lease', 'revoke'], summary: 'end a lease early; the daemon wipes the values', usage: REVOKE_USAGE, run: revoke },
];
