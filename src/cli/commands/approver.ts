import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createDeviceKeys } from '../../approver/keys.js';
import { approverPaths, loadApproverState, type ApproverPaths } from '../../approver/state.js';
import { ensurePrivateDirectory } from '../../local/files.js';
import { writeState, type ApproverState } from '../../local/state.js';
import { displayFingerprint, verifyDeviceCert } from '../../protocol/index.js';
import { trustOf } from '../admin.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { pollForCertificate, readInvite, submitEnrollment, writeKeyFingerprints } from '../enroll.js';
import { formatTime, nowSeconds, parseDuration } from '../format.js';
import { inviteCommand, listCommand, revokeCommand } from '../members.js';
import { readPassphrase } from '../prompt.js';

const ENROLL_USAGE = 'stillvault approver enroll --invite TOKEN [--name NAME] [--wait] [--timeout 10m]';
const STATUS_USAGE = 'stillvault approver status [--wait] [--timeout 10m]';
const DEFAULT_WAIT_SECONDS = 600;

/**
 * Finishes enrollment: polls for the certificate (at most `waitSeconds`),
 * verifies it against the pinned OIK, checks that it certifies the keys this
 * device made, and stores it. Returns false when the admin has not signed yet.
 */
async function completeEnrollment(io: CliIo, paths: ApproverPaths, state: ApproverState, waitSeconds: number): Promise<boolean> {
  if (state.enrollment === null) return state.certificate !== null;
  const certificate = await pollForCertificate(io, { broker: state.broker, org: state.org, enrollment: state.enrollment }, waitSeconds);
  if (certificate === null) return false;

  const verified = await verifyDeviceCert(certificate, trustOf(state), nowSeconds());
  const keys = state.publicKeys;
  if (keys === undefined || verified.body.signingKey !== keys.signingKey || verified.body.sealingKey !== keys.sealingKey) {
    throw new CliError('key_mismatch', 'the certificate from the broker does not certify the keys this device made', {
      hint: 'do not use this approver; tell the admin, revoke the device and enroll again',
    });
  }
  if (verified.body.platform !== 'terminal') throw new CliError('key_mismatch', `the certificate is for a ${verified.body.platform} device, not a terminal`);
  const done: ApproverState = { ...state, device: verified.body.device, name: verified.body.name, enrollment: null, certificate: verified };
  await writeState(paths.state, done);
  io.stderr.write(`Enrolled as approver ${JSON.stringify(verified.body.name)} (device ${verified.body.device}), certificate valid until ${formatTime(verified.body.expires)}.\n`);
  return true;
}

async function enroll(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    invite: { type: 'string' }, name: { type: 'string' }, wait: { type: 'boolean' }, timeout: { type: 'string' },
  }, ENROLL_USAGE, false);
  const paths = approverPaths(io.env);
  const waitSeconds = values.timeout === undefined ? DEFAULT_WAIT_SECONDS : parseDuration(values.timeout, '--timeout');
  const existing = await loadApproverState(paths);

  if (values.invite === undefined) {
    if (existing?.enrollment != null && values.wait === true) return status(['--wait', ...(values.timeout === undefined ? [] : ['--timeout', values.timeout])], io);
    throw usageError('missing --invite TOKEN', `usage: ${ENROLL_USAGE}`);
  }
  if (existing !== undefined) {
    throw new CliError('already_enrolled', `${paths.state} already contains an approver for org ${existing.orgName}`, {
      hint: existing.certificate === null ? 'run `stillvault approver status --wait` to finish that enrollment' : 'use another STILLVAULT_HOME to enroll a second approver',
    });
  }

  const token = readInvite(io, values.invite, 'device');
  const name = values.name ?? token.name;
  if (name.length === 0 || name.length > 128) throw usageError('--name must be 1 to 128 characters');

  const passphrase = await readPassphrase(io, 'New passphrase for this approver\'s keys: ', { confirm: true });
  await ensurePrivateDirectory(path.dirname(paths.keys));
  const keys = await createDeviceKeys(paths.keys, passphrase);
  const publicKeys = { signingKey: keys.signing.publicKey.toBase64Url(), sealingKey: keys.sealing.publicKey.toBase64Url() };
  keys.wipe();

  let enrollmentId: string;
  try {
    enrollmentId = await submitEnrollment(token, { name, platform: 'terminal', keys: publicKeys });
  } catch (error) {
    await fs.rm(paths.keys, { force: true });
    throw error;
  }
  const state: ApproverState = {
    v: 1, org: token.org, orgName: token.orgName, identityKey: token.identityKey, broker: token.broker,
    device: '', name, publicKeys, enrollment: { id: enrollmentId, code: token.code }, certificate: null,
  };
  await writeState(paths.state, state);

  io.stderr.write(`Enrollment ${enrollmentId} submitted. Ask the admin to run \`stillvault enrollments approve ${enrollmentId}\`\n`);
  io.stderr.write('and to check that it shows these fingerprints:\n');
  writeKeyFingerprints(io, { 'signing key': publicKeys.signingKey, 'sealing key': publicKeys.sealingKey });
  if (values.wait !== true) {
    io.stderr.write('Then run `stillvault approver status --wait` here to fetch the certificate.\n');
    return 0;
  }
  if (!(await completeEnrollment(io, paths, state, waitSeconds))) {
    throw new CliError('timeout', 'the admin has not signed the certificate yet', { hint: 'run `stillvault approver status --wait` later' });
  }
  return 0;
}

async function status(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { wait: { type: 'boolean' }, timeout: { type: 'string' } }, STATUS_USAGE, false);
  const paths = approverPaths(io.env);
  const state = await loadApproverState(paths);
  if (state === undefined) {
    throw new CliError('not_enrolled', 'this machine is not an approver', { hint: 'run `stillvault approver enroll --invite TOKEN`' });
  }
  let waitSeconds = 0;
  if (values.wait === true) waitSeconds = values.timeout === undefined ? DEFAULT_WAIT_SECONDS : parseDuration(values.timeout, '--timeout');
  const enrolled = await completeEnrollment(io, paths, state, waitSeconds);
  const current = (await loadApproverState(paths)) ?? state;
  io.stdout.write(`org          ${current.orgName} ${displayFingerprint(current.org)}\n`);
  io.stdout.write(`broker       ${current.broker}\n`);
  io.stdout.write(`name         ${current.name}\n`);
  if (current.publicKeys !== undefined) writeKeyFingerprints(io, { 'signing key': current.publicKeys.signingKey, 'sealing key': current.publicKeys.sealingKey });
  if (enrolled && current.certificate !== null) {
    io.stdout.write(`device       ${current.device}\n`);
    io.stdout.write(`status       enrolled, certificate valid until ${formatTime(current.certificate.body.expires)}\n`);
    return 0;
  }
  io.stdout.write(`status       waiting for the admin (enrollment ${current.enrollment?.id ?? '?'})\n`);
  return values.wait === true ? 1 : 0;
}

export const approverCommands: Command[] = [
  inviteCommand('device'),
  {
    name: ['approver', 'enroll'],
    summary: 'enroll this terminal as an approver device with an invite token',
    usage: ENROLL_USAGE,
    run: enroll,
  },
  {
    name: ['approver', 'status'],
    summary: 'show this approver\'s enrollment; --wait fetches the certificate once the admin signs it',
    usage: STATUS_USAGE,
    run: status,
  },
  listCommand('device'),
  revokeCommand('device'),
];
