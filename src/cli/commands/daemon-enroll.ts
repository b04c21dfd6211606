import { promises as fs } from 'node:fs';
import { verifyConsumerCert } from '../../protocol/index.js';
import { checkPinnedOrg, createHostKey, loadHostKey, readState, statePath, writeState, type DaemonState } from '../../local/state.js';
import { trustOf } from '../admin.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { pollForCertificate, readInvite, submitEnrollment, writeKeyFingerprints } from '../enroll.js';
import { formatTime, nowSeconds, parseDuration } from '../format.js';
import { inviteCommand, listCommand, revokeCommand } from '../members.js';

const ENROLL_USAGE = 'stillvault daemon enroll --invite TOKEN [--name NAME] [--wait] [--timeout 10m]\n       stillvault daemon enroll --wait [--timeout 10m]   (finish a pending enrollment)';
const DEFAULT_WAIT_SECONDS = 600;

function daemonPaths(io: CliIo): { state: string; hostKey: string } {
  return { state: statePath('daemon', 'consumer.json', io.env), hostKey: statePath('daemon', 'host-key.json', io.env) };
}

/**
 * Polls for the consumer certificate, verifies it against the pinned OIK,
 * checks it certifies this host's key, and stores it. Returns false when the
 * admin has not signed it within `waitSeconds`.
 */
async function completeEnrollment(io: CliIo, state: DaemonState, waitSeconds: number): Promise<boolean> {
  if (state.enrollment === null) return state.certificate !== null;
  const paths = daemonPaths(io);
  const certificate = await pollForCertificate(io, { broker: state.broker, org: state.org, enrollment: state.enrollment }, waitSeconds);
  if (certificate === null) return false;

  const verified = await verifyConsumerCert(certificate, trustOf(state), nowSeconds());
  const hostKey = await loadHostKey(paths.hostKey);
  const matches = verified.body.hostKey === hostKey.publicKey.toBase64Url();
  hostKey.wipe();
  if (!matches) {
    throw new CliError('key_mismatch', 'the certificate from the broker does not certify this host\'s key', {
      hint: 'do not start the daemon; tell the admin, revoke it and enroll again',
    });
  }
  const done: DaemonState = { ...state, consumer: verified.body.consumer, name: verified.body.name, enrollment: null, certificate: verified };
  await writeState(paths.state, done);
  io.stderr.write(`Enrolled as daemon ${JSON.stringify(verified.body.name)} (consumer ${verified.body.consumer}), certificate valid until ${formatTime(verified.body.expires)}.\n`);
  io.stdout.write(`${verified.body.consumer}\n`);
  return true;
}

async function enroll(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    invite: { type: 'string' }, name: { type: 'string' }, wait: { type: 'boolean' }, timeout: { type: 'string' },
  }, ENROLL_USAGE, false);
  const paths = daemonPaths(io);
  const waitSeconds = values.timeout === undefined ? DEFAULT_WAIT_SECONDS : parseDuration(values.timeout, '--timeout');
  const existing = await readState<DaemonState>(paths.state);
  if (existing !== undefined) checkPinnedOrg(existing, paths.state);

  if (values.invite === undefined) {
    if (existing === undefined || values.wait !== true) throw usageError('missing --invite TOKEN', `usage: ${ENROLL_USAGE}`);
    if (!(await completeEnrollment(io, existing, waitSeconds))) {
      throw new CliError('timeout', 'the admin has not signed the certificate yet', { hint: 'run `stillvault daemon enroll --wait` again later' });
    }
    return 0;
  }
  if (existing !== undefined) {
    throw new CliError('already_enrolled', `${paths.state} already contains a daemon for org ${existing.orgName}`, {
      hint: existing.certificate === null ? 'run `stillvault daemon enroll --wait` to finish that enrollment' : 'use another STILLVAULT_HOME to enroll a second daemon',
    });
  }

  const token = readInvite(io, values.invite, 'consumer');
  const name = values.name ?? token.name;
  if (name.length === 0 || name.length > 128) throw usageError('--name must be 1 to 128 characters');

  const hostKey = await createHostKey(paths.hostKey);
  const publicKey = hostKey.publicKey.toBase64Url();
  hostKey.wipe();
  let enrollmentId: string;
  try {
    enrollmentId = await submitEnrollment(token, { name, platform: process.platform, keys: { hostKey: publicKey } });
  } catch (error) {
    await fs.rm(paths.hostKey, { force: true });
    throw error;
  }
  const state: DaemonState = {
    v: 1, org: token.org, orgName: token.orgName, identityKey: token.identityKey, broker: token.broker,
    consumer: '', name, enrollment: { id: enrollmentId, code: token.code }, certificate: null,
  };
  await writeState(paths.state, state);

  io.stderr.write(`Enrollment ${enrollmentId} submitted. Ask the admin to run \`stillvault enrollments approve ${enrollmentId}\`\n`);
  io.stderr.write('and to check that it shows this fingerprint:\n');
  writeKeyFingerprints(io, { 'host key': publicKey });
  if (values.wait !== true) {
    io.stderr.write('Then run `stillvault daemon enroll --wait` here to fetch the certificate.\n');
    return 0;
  }
  if (!(await completeEnrollment(io, state, waitSeconds))) {
    throw new CliError('timeout', 'the admin has not signed the certificate yet', { hint: 'run `stillvault daemon enroll --wait` later' });
  }
  return 0;
}

export const daemonEnrollCommands: Command[] = [
  inviteCommand('consumer'),
  {
    name: ['daemon', 'enroll'],
    summary: 'enroll this host\'s daemon with an invite token (--wait fetches the certificate)',
    usage: ENROLL_USAGE,
    run: enroll,
  },
  listCommand('consumer'),
  revokeCommand('consumer'),
];
