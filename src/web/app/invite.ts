import { decodeInviteToken, type InviteToken } from '../../cli/invite.js';
import { ApproverError } from './errors.js';

/**
 * Parses the invite token from an enrollment link `<app origin>/#enroll=TOKEN`.
 * The token is the one `stillvault approver invite NAME --web` writes, and
 * decodeInviteToken (src/cli/invite.ts, browser-safe) checks it exactly as
 * the terminal approver does. This adds the expiry check and turns the
 * CLI's errors into messages for the person holding the phone.
 */

export type Invite = InviteToken & { kind: 'device' };

function coded(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : '';
}

/** Decodes and checks an invite token. Throws ApproverError('invite_invalid' | 'invite_expired' | 'untrusted_signer'). */
export function parseInvite(text: string, now: number): Invite {
  let token: InviteToken;
  try {
    token = decodeInviteToken(text, 'device');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    switch (coded(error)) {
      case 'untrusted_signer':
        throw new ApproverError('untrusted_signer', `${reason}. Do not use this link; ask your admin for a new one over a channel you trust.`, { cause: error });
      case 'invite_wrong_kind':
        throw new ApproverError('invite_invalid', 'This enrollment link enrolls a daemon host, not an approver. Ask your admin for an approver link.', { cause: error });
      default:
        throw new ApproverError('invite_invalid', `This enrollment link is not valid (${reason}). Ask your admin for a new link.`, { cause: error });
    }
  }
  if (now > token.expires) throw new ApproverError('invite_expired', 'This enrollment link has expired. Ask your admin for a new one.');
  return { ...token, kind: 'device' };
}
