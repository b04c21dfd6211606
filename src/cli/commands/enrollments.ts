import type { Enrollment } from '../../broker/client.js';
import { displayFingerprint, fingerprintOfBase64Url, issueConsumerCert, issueDeviceCert, newId, ProtocolError } from '../../protocol/index.js';
import { loadVerifiedMembers, withAdminSession, type AdminSession } from '../admin.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { memberWord } from '../enroll.js';
import { formatTime, nowSeconds, parseDuration, parseFormat, writeJson, writeTable } from '../format.js';

const LIST_USAGE = 'stillvault enrollments list [--state pending|done|rejected|all] [--format table|json]';
const APPROVE_USAGE = 'stillvault enrollments approve ID [--expires 365d] [--name NAME] [--yes]';
const REJECT_USAGE = 'stillvault enrollments reject ID';
const DEFAULT_CERT_SECONDS = 365 * 86_400;

function keyLines(enrollment: Enrollment): string[] {
  return Object.entries(enrollment.keys).map(([label, key]) => {
    let fingerprint: string;
    try {
      fingerprint = displayFingerprint(fingerprintOfBase64Url(key));
    } catch {
      fingerprint = '(invalid key)';
    }
    return `${label.replace(/Key$/, ' key').toLowerCase().padEnd(12)} ${fingerprint}`;
  });
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { state: { type: 'string' }, format: { type: 'string' } }, LIST_USAGE, false);
  const format = parseFormat(values.format);
  const stateFilter = values.state ?? 'pending';
  if (!['pending', 'done', 'rejected', 'all'].includes(stateFilter)) throw usageError(`invalid --state ${JSON.stringify(stateFilter)}`, `usage: ${LIST_USAGE}`);
  const enrollments = await withAdminSession(io, (session) =>
    session.client.listEnrollments(stateFilter === 'all' ? undefined : (stateFilter as Enrollment['state'])));
  if (format === 'json') {
    writeJson(io, enrollments.map((item) => ({
      id: item.id, kind: memberWord(item.kind), name: item.name, platform: item.platform, state: item.state, created: item.created, keys: item.keys,
      fingerprints: Object.fromEntries(Object.entries(item.keys).map(([label, key]) => [label, fingerprintOfBase64Url(key)])),
    })));
    return 0;
  }
  writeTable(io, ['ID', 'KIND', 'NAME', 'PLATFORM', 'STATE', 'SUBMITTED'], enrollments.map((item) => [
    item.id, memberWord(item.kind), item.name, item.platform, item.state, formatTime(item.created),
  ]), `no ${stateFilter === 'all' ? '' : `${stateFilter} `}enrollments`);
  return 0;
}

async function findPending(session: AdminSession, id: string): Promise<Enrollment> {
  const all = await session.client.listEnrollments();
  const enrollment = all.find((item) => item.id === id);
  if (enrollment === undefined) {
    throw new CliError('not_found', `no enrollment ${id}`, { hint: 'run `stillvault enrollments list` to see pending enrollments' });
  }
  if (enrollment.state !== 'pending') throw new CliError('enrollment_not_pending', `enrollment ${id} is ${enrollment.state}, not pending`);
  return enrollment;
}

/** Asks the admin to confirm on a terminal; without one, --yes is required. */
async function confirm(io: CliIo, question: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (io.stdin.isTTY !== true) {
    throw new CliError('confirmation_required', 'refusing to sign without confirmation: stdin is not a terminal', {
      hint: 'compare the fingerprints with the new member, then pass --yes',
    });
  }
  io.stderr.write(`${question} [y/N] `);
  const answer = await new Promise<string>((resolve) => {
    io.stdin.resume();
    io.stdin.setEncoding('utf8');
    io.stdin.once('data', (chunk: string) => { io.stdin.pause(); resolve(chunk.trim().toLowerCase()); });
  });
  if (answer !== 'y' && answer !== 'yes') throw new CliError('cancelled', 'cancelled: nothing was signed', { exitCode: 1 });
}

async function approve(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    expires: { type: 'string' }, name: { type: 'string' }, yes: { type: 'boolean' },
  }, APPROVE_USAGE);
  const [id, ...rest] = positionals;
  if (id === undefined || rest.length > 0) throw usageError('expected exactly one enrollment ID', `usage: ${APPROVE_USAGE}`);
  const lifetime = values.expires === undefined ? DEFAULT_CERT_SECONDS : parseDuration(values.expires, '--expires');

  const certified = await withAdminSession(io, async (session) => {
    const enrollment = await findPending(session, id);
    const word = memberWord(enrollment.kind);
    const name = values.name ?? enrollment.name;
    const members = await loadVerifiedMembers(session.client, session.trust);
    const taken = enrollment.kind === 'device' ? members.devices.some((cert) => cert.body.name === name) : members.consumers.some((cert) => cert.body.name === name);
    if (taken) {
      throw new CliError('name_taken', `an enrolled ${word} is already named ${JSON.stringify(name)}`, {
        hint: `pass --name with another name, or revoke the old one first (\`stillvault ${word} revoke ${name}\`)`,
      });
    }

    io.stderr.write(`Enrollment ${enrollment.id}: ${word} ${JSON.stringify(name)} on ${enrollment.platform}, submitted ${formatTime(enrollment.created)}\n`);
    for (const line of keyLines(enrollment)) io.stderr.write(`  ${line}\n`);
    io.stderr.write('Compare these fingerprints with the ones the new member\'s terminal shows, over a channel you trust.\n');
    await confirm(io, `Sign a certificate for ${word} ${JSON.stringify(name)}, valid until ${formatTime(nowSeconds() + lifetime)}?`, values.yes === true);

    const issued = nowSeconds();
    const expires = issued + lifetime;
    try {
      if (enrollment.kind === 'device') {
        const platform = enrollment.platform;
        if (platform !== 'web' && platform !== 'terminal') throw new CliError('invalid_enrollment', `enrollment platform ${JSON.stringify(enrollment.platform)} is not terminal or web`);
        const cert = await issueDeviceCert(session.identityKey, {
          device: newId(), name, platform, signingKey: enrollment.keys.signingKey ?? '', sealingKey: enrollment.keys.sealingKey ?? '', issued, expires,
        });
        await session.client.uploadCertificate(enrollment.id, cert);
        return { word, name, id: cert.body.device };
      }
      const cert = await issueConsumerCert(session.identityKey, { consumer: newId(), name, hostKey: enrollment.keys.hostKey ?? '', issued, expires });
      await session.client.uploadCertificate(enrollment.id, cert);
      return { word, name, id: cert.body.consumer };
    } catch (error) {
      if (error instanceof ProtocolError) {
        throw new CliError('invalid_enrollment', `enrollment ${enrollment.id} carries unusable keys: ${error.message}`, { hint: `reject it: stillvault enrollments reject ${enrollment.id}` });
      }
      throw error;
    }
  });
  io.stderr.write(`Signed: ${certified.word} ${JSON.stringify(certified.name)} can now fetch its certificate.\n`);
  io.stdout.write(`${certified.id}\n`);
  return 0;
}

async function reject(argv: string[], io: CliIo): Promise<number> {
  const { positionals } = parseCommandArgs(argv, {}, REJECT_USAGE);
  const [id, ...rest] = positionals;
  if (id === undefined || rest.length > 0) throw usageError('expected exactly one enrollment ID', `usage: ${REJECT_USAGE}`);
  await withAdminSession(io, async (session) => {
    await findPending(session, id);
    await session.client.rejectEnrollment(id);
  });
  io.stderr.write(`Rejected enrollment ${id}.\n`);
  return 0;
}

export const enrollmentCommands: Command[] = [
  { name: ['enrollments', 'list'], summary: 'list enrollments waiting for the admin (or --state done|rejected|all)', usage: LIST_USAGE, run: list },
  { name: ['enrollments', 'approve'], summary: 'compare key fingerprints and sign the certificate of a pending enrollment', usage: APPROVE_USAGE, run: approve },
  { name: ['enrollments', 'reject'], summary: 'reject a pending enrollment', usage: REJECT_USAGE, run: reject },
];
