import { BrokerClient, BrokerClientError, type Enrollment, type EnrollmentSubmission } from '../broker/client.js';
import { displayFingerprint, fingerprintOfBase64Url, newId, type Signed } from '../protocol/index.js';
import type { CliIo } from './command.js';
import { CliError } from './errors.js';
import { nowSeconds } from './format.js';
import { decodeInviteToken, encodeInviteToken, inviteCodeHash, newInviteCode, type InviteToken } from './invite.js';
import type { AdminSession } from './admin.js';

/**
 * Both sides of two-sided enrollment, shared by approvers and daemons:
 * 1. the admin creates an invite and hands over the token;
 * 2. the new member makes its keys, pins the org from the token and submits
 *    its public keys with the one-time code;
 * 3. the admin compares key fingerprints and signs a certificate;
 * 4. the member polls for it and verifies it against the pinned Org Identity
 *    key and the keys it made.
 */

export type MemberKind = InviteToken['kind'];

export function memberWord(kind: MemberKind): 'approver' | 'daemon' {
  return kind === 'device' ? 'approver' : 'daemon';
}

/** Admin side: registers an invite with the broker and returns the token to hand over. */
export async function createInviteToken(session: AdminSession, kind: MemberKind, name: string, lifetimeSeconds: number): Promise<string> {
  const code = newInviteCode();
  const id = newId();
  const expires = nowSeconds() + lifetimeSeconds;
  await session.client.createInvite({ id, codeHash: inviteCodeHash(code), kind, name, expires });
  const { state } = session;
  return encodeInviteToken({
    v: 1, broker: state.broker, org: state.org, orgName: state.orgName, identityKey: state.identityKey, invite: id, code, kind, name, expires,
  });
}

/** Member side: decodes the token, checks it has not expired, and prints the org fingerprint being pinned. */
export function readInvite(io: CliIo, text: string, kind: MemberKind): InviteToken {
  const token = decodeInviteToken(text, kind);
  if (token.expires < nowSeconds()) {
    throw new CliError('invite_invalid', `the invite for ${JSON.stringify(token.name)} expired at ${new Date(token.expires * 1000).toISOString()}`, {
      hint: `ask the admin for a new one: \`stillvault ${memberWord(kind)} invite ${token.name}\``,
    });
  }
  io.stderr.write(`Pinning org ${JSON.stringify(token.orgName)}, fingerprint ${displayFingerprint(token.org)}.\n`);
  io.stderr.write('Check that it matches the fingerprint `stillvault init` printed for your admin.\n');
  return token;
}

/** Member side: submits public keys with the invite's code and returns the enrollment id. */
export async function submitEnrollment(token: InviteToken, submission: Omit<EnrollmentSubmission, 'inviteId' | 'code'>): Promise<string> {
  const client = new BrokerClient(token.broker, token.org);
  try {
    const { enrollment } = await client.submitEnrollment({ ...submission, inviteId: token.invite, code: token.code });
    return enrollment;
  } catch (error) {
    if (error instanceof BrokerClientError && error.code === 'invite_invalid') {
      throw new CliError('invite_invalid', 'the broker rejected the invite: it is unknown, used, expired or revoked', {
        hint: `ask the admin for a new one: \`stillvault ${memberWord(token.kind)} invite ${token.name}\``,
        cause: error,
      });
    }
    throw error;
  }
}

/** Prints key fingerprints the way both sides show them, so the admin can compare. */
export function writeKeyFingerprints(io: CliIo, keys: Record<string, string>): void {
  for (const [label, key] of Object.entries(keys)) {
    io.stdout.write(`${label.padEnd(12)} ${displayFingerprint(fingerprintOfBase64Url(key))}\n`);
  }
}

export interface PendingEnrollment {
  broker: string;
  org: string;
  enrollment: { id: string; code: string };
}

/**
 * Member side: polls the enrollment until the admin signs or rejects it.
 * Returns the certificate, unverified, or null when `waitSeconds` passes
 * first; the caller verifies it against the pinned key and its own keys.
 */
export async function pollForCertificate(io: CliIo, pending: PendingEnrollment, waitSeconds: number): Promise<Signed | null> {
  const client = new BrokerClient(pending.broker, pending.org);
  const deadline = Date.now() + waitSeconds * 1000;
  let announced = false;
  for (;;) {
    const enrollment: Enrollment = await client.pollEnrollment(pending.enrollment.id, pending.enrollment.code);
    if (enrollment.state === 'rejected') {
      throw new CliError('enrollment_rejected', `the admin rejected enrollment ${pending.enrollment.id}`, {
        hint: 'ask the admin why, and for a new invite if it was a mistake',
      });
    }
    if (enrollment.state === 'done') {
      if (enrollment.certificate === null) throw new CliError('invalid_response', 'the broker reports the enrollment done but sent no certificate');
      return enrollment.certificate;
    }
    if (Date.now() >= deadline) return null;
    if (!announced) {
      io.stderr.write(`Waiting for the admin to run \`stillvault enrollments approve ${pending.enrollment.id}\` ...\n`);
      announced = true;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(2000, Math.max(100, deadline - Date.now()))));
  }
}
