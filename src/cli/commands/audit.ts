import { AuditChainError, verifyAuditChain } from '../../broker/audit-verify.js';
import type { AuditEntry } from '../../broker/audit.js';
import {
  SigningPublicKey, verifyConsumerCert, verifyDeviceCert, verifySigned,
  type ApprovalBody, type AuditHeadRef, type ConsumerCertBody, type DeviceCertBody, type OrgTrust, type PolicyBody, type RequestBody,
  type RevocationBody, type SecretBody,
} from '../../protocol/index.js';
import { readState, statePath, writeState, type AdminState, type AuditHeadState } from '../../local/state.js';
import { formatLease, terminalSafe } from '../../approver/display.js';
import { withAdminSession, type AdminSession } from '../admin.js';
import { fetchAuditPages, type ListedAuditEntry } from '../audit-log.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { formatTime, parseFormat } from '../format.js';

const TAIL_USAGE = 'stillvault audit tail [--lines 20] [--follow] [--format table|json]';
const VERIFY_USAGE = 'stillvault audit verify';
const FOLLOW_INTERVAL_MS = 2000;

function headFile(io: CliIo): string {
  return statePath('admin', 'audit-head.json', io.env);
}

async function loadTrustedHead(io: CliIo): Promise<AuditHeadRef | undefined> {
  return (await readState<AuditHeadState>(headFile(io)))?.head;
}

function brokerKeyOf(state: AdminState): SigningPublicKey {
  if (state.brokerKey === undefined) {
    throw new CliError('broker_key_missing', 'admin/org.json has no pinned broker key', { hint: 'run `stillvault init` with this version, or add brokerKey from GET /v1/orgs/ORG' });
  }
  return SigningPublicKey.fromBase64Url(state.brokerKey, 'pinned broker key');
}

/**
 * Fetches the whole chain and verifies it against the head this machine
 * kept and the broker-signed head, then keeps the new head. Retries once
 * when an entry was appended between the last page and the signed head.
 */
async function fetchVerifiedChain(io: CliIo, session: AdminSession): Promise<{ entries: ListedAuditEntry[]; head: AuditHeadRef }> {
  const trustedHead = await loadTrustedHead(io);
  const brokerKey = brokerKeyOf(session.state);
  for (let attempt = 0; ; attempt++) {
    const { entries, head: signedHead } = await fetchAuditPages(session.client);
    try {
      const head = await verifyAuditChain(entries, { ...(trustedHead === undefined ? {} : { trustedHead }), signedHead, brokerKey });
      const kept: AuditHeadState = { v: 1, head };
      await writeState(headFile(io), kept);
      return { entries, head };
    } catch (error) {
      const raced = error instanceof AuditChainError && error.code === 'audit_truncated' && signedHead.body.seq > entries.length;
      if (!raced || attempt > 0) throw chainError(error);
    }
  }
}

function chainError(error: unknown): unknown {
  if (!(error instanceof AuditChainError)) return error;
  return new CliError(error.code, `audit log verification failed at entry ${error.seq}: ${error.message}`, {
    hint: 'the broker served a log that differs from what was signed or seen before; keep admin/audit-head.json and investigate the broker',
    cause: error,
  });
}

/** Names and verified objects that make entries readable. */
class EventFormatter {
  readonly #trust: OrgTrust;
  readonly #devices = new Map<string, DeviceCertBody>();
  readonly #consumers = new Map<string, ConsumerCertBody>();
  readonly #requests = new Map<string, RequestBody>();
  readonly #delivered = new Map<string, number>();
  readonly #eligible = new Map<string, number>();

  constructor(trust: OrgTrust, devices: DeviceCertBody[], consumers: ConsumerCertBody[]) {
    this.#trust = trust;
    for (const device of devices) this.#devices.set(device.device, device);
    for (const consumer of consumers) this.#consumers.set(consumer.consumer, consumer);
  }

  #actorName(actor: string): string {
    const [role, id = ''] = actor.split(':');
    if (role === 'device') return this.#devices.get(id)?.name ?? `device ${id}`;
    if (role === 'consumer') return `daemon ${this.#consumers.get(id)?.name ?? id}`;
    if (role === 'admin') return 'admin';
    return actor;
  }

  async #signed<B>(object: unknown, kind: Parameters<typeof verifySigned>[1], key: SigningPublicKey | undefined): Promise<B | undefined> {
    if (key === undefined) return undefined;
    try {
      return (await verifySigned(object, kind, this.#trust.org, key)).body as B;
    } catch {
      return undefined;
    }
  }

  /** Returns one line describing the entry; `[unverified]` marks objects whose signature did not check. */
  async describe(entry: AuditEntry): Promise<string> {
    const subject = entry.subjects[0] ?? '';
    const oik = this.#trust.identityKey;
    switch (entry.type) {
      case 'org-registered': return 'org registered';
      case 'invite-created': return `admin created invite ${subject}`;
      case 'enrollment-submitted': return `enrollment ${entry.subjects[1] ?? ''} submitted for invite ${subject}`;
      case 'enrollment-rejected': return `admin rejected enrollment ${subject}`;
      case 'certificate-stored': {
        const cert = (await this.#signed<DeviceCertBody>(entry.object, 'device-cert', oik)) ?? (await this.#signed<ConsumerCertBody>(entry.object, 'consumer-cert', oik));
        if (cert === undefined) return `[unverified] certificate stored for ${subject}`;
        if (cert.kind === 'device-cert') this.#devices.set(cert.device, cert);
        else this.#consumers.set(cert.consumer, cert);
        return `admin certified ${cert.kind === 'device-cert' ? 'approver' : 'daemon'} ${terminalSafe(cert.name)}, valid until ${formatTime(cert.expires)}`;
      }
      case 'revocation-stored': {
        const revocation = await this.#signed<RevocationBody>(entry.object, 'revocation', oik);
        if (revocation === undefined) return `[unverified] revocation stored for ${subject}`;
        const name = revocation.subject === 'device' ? this.#devices.get(revocation.id)?.name : this.#consumers.get(revocation.id)?.name;
        return `admin revoked ${revocation.subject === 'device' ? 'approver' : 'daemon'} ${terminalSafe(name ?? revocation.id)}`;
      }
      case 'policy-stored': {
        const policy = await this.#signed<PolicyBody>(entry.object, 'policy', oik);
        if (policy === undefined) return `[unverified] policy stored: ${subject}`;
        const approvers = policy.approvers.map((id) => this.#devices.get(id)?.name ?? id).join(', ');
        return `admin set policy ${policy.name} v${policy.version}: ${policy.paths.join(',')} approved by ${terminalSafe(approvers)} (any-of-${policy.approvers.length}), max lease ${formatLease(policy.maxLeaseSeconds)}`;
      }
      case 'secret-stored': {
        const secret = await this.#signed<SecretBody>(entry.object, 'secret', oik);
        if (secret === undefined) return `[unverified] secret stored: ${subject}`;
        return secret.deleted ? `admin deleted ${secret.path} (v${secret.version})` : `admin stored ${secret.path} v${secret.version}, sealed to ${secret.grants.length} approver${secret.grants.length === 1 ? '' : 's'}`;
      }
      case 'request-created': {
        const eligible = /^eligible:(\d+)$/.exec(entry.subjects[1] ?? '')?.[1];
        if (eligible !== undefined) this.#eligible.set(subject, Number(eligible));
        return this.#describeRequest(entry);
      }
      case 'lease-revoked': {
        const revocation = await this.#signed<RevocationBody>(entry.object, 'revocation', oik);
        if (revocation === undefined) return `[unverified] lease ${subject} revoked`;
        return `admin revoked the lease of ${this.#requestLabel(revocation.id)}`;
      }
      case 'request-delivered': {
        const count = (this.#delivered.get(subject) ?? 0) + 1;
        this.#delivered.set(subject, count);
        const eligible = this.#eligible.get(subject);
        const tally = eligible === undefined ? `${count} approver${count === 1 ? '' : 's'} so far` : `${count} of ${eligible} approver${eligible === 1 ? '' : 's'}, any-of-${eligible}`;
        return `push delivered to ${terminalSafe(this.#actorName(entry.actor))} for ${this.#requestLabel(subject)} (${tally})`;
      }
      case 'approval-accepted':
      case 'approval-rejected': return this.#describeApproval(entry);
      case 'request-expired': return `${this.#requestLabel(subject)} expired without a decision`;
      case 'request-undelivered': return `${this.#requestLabel(subject)} failed: no approver received it`;
      case 'request-cancelled': return `${this.#requestLabel(subject)} cancelled by the daemon`;
      case 'request-refused': {
        const code = /^code:(.*)$/.exec(entry.subjects[1] ?? '')?.[1] ?? 'unknown';
        return `${terminalSafe(this.#actorName(entry.actor))} refused ${this.#requestLabel(subject)}: it failed verification (${terminalSafe(code)})`;
      }
      case 'result-acknowledged': return `${terminalSafe(this.#actorName(entry.actor))} received the result of ${this.#requestLabel(subject)}`;
      default: return `${entry.type as string} by ${entry.actor} ${entry.subjects.join(' ')}`;
    }
  }

  #requestLabel(id: string): string {
    const request = this.#requests.get(id);
    return request === undefined ? `request ${id}` : `request for ${request.paths.join(',')}`;
  }

  async #describeRequest(entry: AuditEntry): Promise<string> {
    const consumerId = entry.actor.split(':')[1] ?? '';
    const consumer = this.#consumers.get(consumerId);
    const key = consumer === undefined ? undefined : SigningPublicKey.fromBase64Url(consumer.hostKey);
    const request = await this.#signed<RequestBody>(entry.object, 'request', key);
    if (request === undefined) return `[unverified] request ${entry.subjects[0] ?? ''} from ${this.#actorName(entry.actor)}`;
    this.#requests.set(request.id, request);
    const who = request.requester.user === '' ? 'agent' : request.requester.user;
    return `${terminalSafe(who)}@${terminalSafe(request.host)} requested ${request.paths.join(',')} uid=${request.requester.uid} exe=${terminalSafe(request.requester.exe)} lease ${formatLease(request.leaseSeconds)}: "${terminalSafe(request.reason)}"`;
  }

  async #describeApproval(entry: AuditEntry): Promise<string> {
    const deviceId = entry.actor.split(':')[1] ?? '';
    const device = this.#devices.get(deviceId);
    const key = device === undefined ? undefined : SigningPublicKey.fromBase64Url(device.signingKey);
    const approval = await this.#signed<ApprovalBody>(entry.object, 'approval', key);
    const name = terminalSafe(this.#actorName(entry.actor));
    if (approval === undefined) return `[unverified] ${entry.type} by ${name} for request ${entry.subjects[0] ?? ''}`;
    const what = this.#requests.get(approval.request)?.paths.join(',') ?? `request ${approval.request}`;
    const decision = approval.decision === 'approve' ? `approved ${what}, lease ${formatLease(approval.leaseSeconds)}` : `denied ${what}`;
    return entry.type === 'approval-accepted' ? `${name} ${decision}` : `${name} ${decision} too late: rejected, the request was already settled`;
  }
}

async function formatterFor(session: AdminSession, now: number): Promise<EventFormatter> {
  const { devices, consumers } = await session.client.listCertificates();
  // Revoked and expired certificates still name their holders in old entries, so keep every OIK-signed one for names.
  const named = { devices: [] as DeviceCertBody[], consumers: [] as ConsumerCertBody[] };
  for (const cert of devices) {
    try { named.devices.push((await verifyDeviceCert(cert, session.trust, Math.min(now, cert.body.expires))).body); } catch { /* not signed by the OIK */ }
  }
  for (const cert of consumers) {
    try { named.consumers.push((await verifyConsumerCert(cert, session.trust, Math.min(now, cert.body.expires))).body); } catch { /* not signed by the OIK */ }
  }
  return new EventFormatter(session.trust, named.devices, named.consumers);
}

async function writeEntries(io: CliIo, formatter: EventFormatter, entries: ListedAuditEntry[], format: 'table' | 'json', start: number): Promise<void> {
  for (const [index, { entry, hash }] of entries.entries()) {
    const text = await formatter.describe(entry);
    if (index < start) continue;
    if (format === 'json') io.stdout.write(`${JSON.stringify({ seq: entry.seq, time: entry.time, type: entry.type, actor: entry.actor, subjects: entry.subjects, text, hash })}\n`);
    else io.stdout.write(`${String(entry.seq).padStart(5)}  ${formatTime(entry.time)}  ${text}\n`);
  }
}

async function tail(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { lines: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' }, format: { type: 'string' } }, TAIL_USAGE, false);
  const format = parseFormat(values.format);
  const lines = values.lines === undefined ? 20 : /^\d{1,9}$/.test(values.lines) ? Number(values.lines) : Number.NaN;
  if (Number.isNaN(lines)) throw usageError(`invalid --lines ${JSON.stringify(values.lines)}: expected a whole number of entries`);
  await withAdminSession(io, async (session) => {
    const now = Math.floor(Date.now() / 1000);
    const formatter = await formatterFor(session, now);
    let { entries } = await fetchVerifiedChain(io, session);
    await writeEntries(io, formatter, entries, format, Math.max(0, entries.length - lines));
    while (values.follow === true) {
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_INTERVAL_MS));
      const next = await fetchVerifiedChain(io, session);
      const fresh = next.entries.slice(entries.length);
      // Entries are described in order, so earlier requests are known when their approvals arrive.
      for (const item of fresh) await writeEntries(io, formatter, [item], format, 0);
      entries = next.entries;
    }
  });
  return 0;
}

async function verify(argv: string[], io: CliIo): Promise<number> {
  parseCommandArgs(argv, {}, VERIFY_USAGE, false);
  const head = await withAdminSession(io, async (session) => (await fetchVerifiedChain(io, session)).head);
  io.stderr.write(`Audit log verified: ${head.seq} entries, hash chain intact, broker-signed head matches, and it extends the head kept in ${headFile(io)}.\n`);
  io.stdout.write(`ok ${head.seq} ${head.hash}\n`);
  return 0;
}

export const auditCommands: Command[] = [
  { name: ['audit', 'tail'], summary: 'show the latest audit events, verified, in plain words (--follow keeps printing)', usage: TAIL_USAGE, run: tail },
  { name: ['audit', 'verify'], summary: 'verify the whole audit hash chain against the broker-signed head and the head kept here', usage: VERIFY_USAGE, run: verify },
];
