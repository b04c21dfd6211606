import QRCode from 'qrcode';
import { createRevocation, displayFingerprint, fingerprintOfBase64Url } from '../protocol/index.js';
import { findByName, loadVerifiedMembers, withAdminSession } from './admin.js';
import { parseCommandArgs, type CliIo, type Command } from './command.js';
import { usageError } from './errors.js';
import { createInviteToken, memberWord, type MemberKind } from './enroll.js';
import { formatTime, nowSeconds, parseDuration, parseFormat, writeJson, writeTable } from './format.js';

/**
 * Admin commands that work the same for approvers (device certificates) and
 * daemons (consumer certificates): invite, revoke and list.
 */

const DEFAULT_INVITE_SECONDS = 24 * 3600;

function singleName(positionals: string[], usage: string): string {
  const [name, ...rest] = positionals;
  if (name === undefined || name.trim() === '' || rest.length > 0) throw usageError('expected exactly one NAME', `usage: ${usage}`);
  if (name.length > 128) throw usageError('NAME must be at most 128 characters');
  return name;
}

export function inviteCommand(kind: MemberKind): Command {
  const word = memberWord(kind);
  const usage = kind === 'device'
    ? `stillvault ${word} invite NAME [--expires 24h] [--web [--app URL]]`
    : `stillvault ${word} invite NAME [--expires 24h]`;
  return {
    name: [word, 'invite'],
    summary: `invite a new ${word === 'approver' ? 'approver device' : 'daemon host'}: prints a one-time enrollment token${kind === 'device' ? ' (or, with --web, a link to the web approver)' : ''}`,
    usage,
    async run(argv: string[], io: CliIo): Promise<number> {
      const { values, positionals } = parseCommandArgs(argv, { expires: { type: 'string' }, web: { type: 'boolean' }, app: { type: 'string' } }, usage);
      const name = singleName(positionals, usage);
      const web = values.web === true;
      if (web && kind !== 'device') throw usageError('--web is for approver invites only', `usage: ${usage}`);
      if (values.app !== undefined && !web) throw usageError('--app goes with --web', `usage: ${usage}`);
      const appUrl = web ? webAppUrl(values.app ?? DEFAULT_WEB_APP) : undefined;
      const lifetime = values.expires === undefined ? DEFAULT_INVITE_SECONDS : parseDuration(values.expires, '--expires');
      const token = await withAdminSession(io, (session) => createInviteToken(session, kind, name, lifetime));
      io.stderr.write(`Invite for ${JSON.stringify(name)}, valid until ${formatTime(nowSeconds() + lifetime)}, usable once.\n`);
      if (appUrl === undefined) {
        io.stderr.write(`Hand it over privately; on the new ${word === 'approver' ? 'device' : 'host'} run \`stillvault ${word} enroll --invite TOKEN\`:\n`);
        io.stdout.write(`${token}\n`);
        return 0;
      }
      const link = webEnrollLink(appUrl, token);
      io.stderr.write(await QRCode.toString(link, { type: 'terminal', small: true }));
      io.stderr.write('Hand the link over privately (it carries the one-time code); open it in the browser of the new device, or scan the QR code above:\n');
      io.stdout.write(`${link}\n`);
      return 0;
    },
  };
}

/** The web approver that `approver serve` runs with its default --listen. */
const DEFAULT_WEB_APP = 'http://localhost:8650';

/**
 * Checks the --app URL. WebAuthn needs a secure context, so the app must be
 * served over https, or over http from localhost (browsers reject an IP address there).
 */
export function webAppUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(`invalid --app URL ${JSON.stringify(text)}`, 'pass the web approver\'s URL, for example --app https://approver.example.com');
  }
  const local = url.hostname === 'localhost' || url.hostname.endsWith('.localhost');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
    throw usageError(`--app ${url.origin} cannot run passkeys: WebAuthn needs https, or http://localhost`, 'serve the app over https, or use --app http://localhost:PORT on the same machine');
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw usageError(`--app ${JSON.stringify(text)} must not contain credentials, a query or a fragment`);
  }
  return url;
}

/** Returns the enrollment link `<app URL>/#enroll=<token>`; the fragment never reaches a server. */
export function webEnrollLink(app: URL, token: string): string {
  return `${app.origin}${app.pathname.replace(/\/+$/, '')}/#enroll=${token}`;
}

export function revokeCommand(kind: MemberKind): Command {
  const word = memberWord(kind);
  const usage = `stillvault ${word} revoke NAME|ID [--reason TEXT]`;
  return {
    name: [word, 'revoke'],
    summary: `revoke ${word === 'approver' ? 'an approver device' : 'a daemon host'}'s certificate`,
    usage,
    async run(argv: string[], io: CliIo): Promise<number> {
      const { values, positionals } = parseCommandArgs(argv, { reason: { type: 'string' } }, usage);
      const name = singleName(positionals, usage);
      const revoked = await withAdminSession(io, async (session) => {
        const members = await loadVerifiedMembers(session.client, session.trust);
        const id = kind === 'device'
          ? findByName(members.devices, name, (cert) => cert.body.device, word).body.device
          : findByName(members.consumers, name, (cert) => cert.body.consumer, word).body.consumer;
        const revocation = await createRevocation(session.identityKey, { subject: kind, id, reason: values.reason ?? '', revoked: nowSeconds() });
        await session.client.putRevocation(revocation);
        return id;
      });
      io.stderr.write(`Revoked ${word} ${JSON.stringify(name)}; it can no longer authenticate to the broker.\n`);
      if (kind === 'device') io.stderr.write('Secrets stay sealed to its key: set them again (`stillvault secret set`) so new versions leave it out.\n');
      io.stdout.write(`${revoked}\n`);
      return 0;
    },
  };
}

interface MemberRow {
  id: string;
  name: string;
  status: string;
  platform?: string;
  key: string;
  expires: number;
}

export function listCommand(kind: MemberKind): Command {
  const word = memberWord(kind);
  const usage = `stillvault ${word} list [--format table|json]`;
  return {
    name: [word, 'list'],
    summary: `list enrolled ${word}s with verified certificates`,
    usage,
    async run(argv: string[], io: CliIo): Promise<number> {
      const { values } = parseCommandArgs(argv, { format: { type: 'string' } }, usage, false);
      const format = parseFormat(values.format);
      const rows = await withAdminSession(io, async (session) => {
        const members = await loadVerifiedMembers(session.client, session.trust);
        const active: MemberRow[] = kind === 'device'
          ? members.devices.map((cert) => ({
            id: cert.body.device, name: cert.body.name, status: 'active', platform: cert.body.platform, key: cert.body.signingKey, expires: cert.body.expires,
          }))
          : members.consumers.map((cert) => ({ id: cert.body.consumer, name: cert.body.name, status: 'active', key: cert.body.hostKey, expires: cert.body.expires }));
        const inactive = members.rejected
          .filter((item) => item.kind === kind)
          .map((item): MemberRow => ({ id: item.id, name: item.name, status: item.code, key: '', expires: 0 }));
        return [...active, ...inactive];
      });
      if (format === 'json') {
        writeJson(io, rows.map((row) => ({ ...row, fingerprint: row.key === '' ? null : fingerprintOfBase64Url(row.key) })));
        return 0;
      }
      writeTable(io, ['NAME', 'ID', 'STATUS', 'EXPIRES', 'KEY FINGERPRINT'], rows.map((row) => [
        row.name, row.id, row.status, row.expires === 0 ? '-' : formatTime(row.expires), row.key === '' ? '-' : displayFingerprint(fingerprintOfBase64Url(row.key)),
      ]), `no ${word}s enrolled`);
      return 0;
    },
  };
}
