import type { VerifiedBundle } from './verify.js';

/**
 * Renders a verified request for the person deciding. Every field comes from
 * the daemon's signed request or the OIK-signed certificate and policy,
 * never from broker-supplied text. Control and bidirectional-formatting
 * characters are shown as \u{...} escapes, so a reason or command line
 * cannot rewrite the terminal or hide text.
 */

// C0 and C1 controls, DEL, and Unicode bidi and invisible formatting marks.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/gu;

/** Escapes characters that could change how a terminal shows the text. */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (char) => `\\u{${(char.codePointAt(0) ?? 0).toString(16)}}`);
}

function quoteArgument(argument: string): string {
  const safe = terminalSafe(argument);
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(safe) ? safe : `'${safe.replace(/'/g, `'\\''`)}'`;
}

export function formatLease(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function formatTimeLeft(seconds: number): string {
  if (seconds <= 0) return 'expired';
  const minutes = Math.floor(seconds / 60);
  return minutes > 0 ? `${minutes}m ${seconds % 60}s` : `${seconds}s`;
}

/** Returns the lines shown for one request, without a trailing newline. */
export function describeRequest(verified: VerifiedBundle, now: number, grantedLease: number): string {
  const { request, policy, consumerCert } = verified;
  const body = request.body;
  const requester = body.requester;
  const versions = verified.secrets.map((secret) => `${terminalSafe(secret.body.path)} (v${secret.body.version})`).join(', ');
  const lines = [
    `Request ${body.id}`,
    `  secrets:    ${versions}`,
    `  host:       ${terminalSafe(body.host)} (daemon ${terminalSafe(consumerCert.body.name)})`,
    `  user:       ${terminalSafe(requester.user === '' ? '(unknown)' : requester.user)} uid=${requester.uid} gid=${requester.gid} pid=${requester.pid}`,
    `  executable: ${terminalSafe(requester.exe)}`,
    `  command:    ${requester.cmdline.map(quoteArgument).join(' ')}`,
    `  reason (the agent's words, unverified): "${terminalSafe(body.reason)}"`,
    `  lease:      ${formatLease(body.leaseSeconds)} asked${grantedLease < body.leaseSeconds ? `, ${formatLease(grantedLease)} allowed by policy ${terminalSafe(policy.body.name)}` : ''}`,
    // The daemon serves a lease to any later process with the same uid and executable, not only to the one that asked.
    `  lease reuse: any process of uid ${requester.uid} running ${terminalSafe(requester.exe)}, for ${formatLease(grantedLease)}`,
    `  time left:  ${formatTimeLeft(body.expires - now)}`,
    `  policy:     ${terminalSafe(policy.body.name)} v${policy.body.version}`,
  ];
  return lines.join('\n');
}
