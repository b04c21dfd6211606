import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { pino, type Logger } from 'pino';
import { statePath } from '../local/state.js';
import { loadAddon } from './addon.js';
import { createApiServer } from './api.js';
import { BrokerLink, errorCode } from './broker-link.js';
import { DaemonError } from './errors.js';
import { RequestFlow } from './flow.js';
import { loadDaemonIdentity } from './identity.js';
import { LeaseStore } from './leases.js';
import { loadRulesFile } from './rules.js';
import { SeenStore } from './seen.js';
import { DaemonService } from './service.js';
import { listenUnixSocket, defaultSocketPath } from './socket.js';

/** Default lease asked for when the caller names none: 5 minutes. */
export const DEFAULT_LEASE_SECONDS = 300;
/** Default time an approver has to decide: 5 minutes (the protocol allows up to 15). */
export const DEFAULT_REQUEST_LIFETIME_SECONDS = 300;

export interface DaemonOptions {
  env: NodeJS.ProcessEnv;
  socketPath?: string;
  /** Broker URL; the one pinned at enrollment when omitted. */
  broker?: string;
  /** Local rules file; $STILLVAULT_HOME/daemon/rules.json when omitted (owner-only rules when that is missing). */
  rulesFile?: string;
  /** Group id allowed to connect (socket 0660, directory 0710). */
  group?: number;
  logger?: Logger;
  defaultLeaseSeconds?: number;
  requestLifetimeSeconds?: number;
}

export interface RunningDaemon {
  socketPath: string;
  close(): Promise<void>;
}

/**
 * Starts the consumer daemon: loads and verifies its identity, authenticates
 * to the broker, opens the WebSocket, and listens on the Unix socket. Fails
 * closed with a DaemonError when the identity is missing or invalid or the
 * broker rejects the certificate. A broker that is only unreachable is
 * retried in the background, and requests fail with broker_unavailable
 * until it responds.
 */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const logger = options.logger ?? pino({ base: { service: 'stillvault-daemon' } }, pino.destination(2));
  // Before the host key or any secret is in memory.
  const dumpable = protectMemory();
  const now = Math.floor(Date.now() / 1000);
  const identity = await loadDaemonIdentity(options.env, now);
  const rulesFile = options.rulesFile ?? statePath('daemon', 'rules.json', options.env);
  const rules = await loadRulesFile(rulesFile, { missingOk: options.rulesFile === undefined });
  const seen = await SeenStore.load(statePath('daemon', 'seen.json', options.env), now);
  const socketPath = options.socketPath ?? defaultSocketPath({ env: options.env });

  const leases = new LeaseStore({
    onEnd: (lease, reason) => { logger.info({ event: 'lease-ended', lease: lease.id, reason, uid: lease.owner.uid }, 'lease ended and values wiped'); },
  });
  // The callbacks below run only after link.start(), once flow and service exist.
  const link = new BrokerLink({
    url: options.broker ?? identity.state.broker,
    org: identity.trust.org,
    consumer: identity.certificate.body.consumer,
    hostKey: identity.hostKey,
    logger,
    onMessage: (message) => { service.handleBrokerMessage(message); },
    onConnected: () => {
      flow.pollPending();
      void service.syncLeaseRevocations();
      void refreshAuditHead(link, seen, logger);
    },
  });
  await authenticateAtStart(link, logger);
  const flow = new RequestFlow({ identity, link, seen, logger, requestLifetimeSeconds: options.requestLifetimeSeconds ?? DEFAULT_REQUEST_LIFETIME_SECONDS });
  const service = new DaemonService({
    identity, rules, leases, flow, link, logger, socketPath, defaultLeaseSeconds: options.defaultLeaseSeconds ?? DEFAULT_LEASE_SECONDS,
  });

  const server = createApiServer(service, logger, { hashExe: rules.requiresExeHash });
  const listener = await listenUnixSocket(server, { path: socketPath, ...(options.group === undefined ? {} : { group: options.group }) });
  link.start();
  logger.info({
    event: 'start', socket: listener.path, org: identity.trust.org, consumer: identity.certificate.body.consumer, broker: link.url, rules: rules.source, dumpable,
  }, 'daemon started');

  let closing: Promise<void> | undefined;
  return {
    socketPath: listener.path,
    close() {
      closing ??= (async () => {
        await listener.close();
        // Cancels every pending request at the broker before the link closes, so approvers stop seeing them.
        await flow.abortAll();
        leases.clear();
        await link.stop();
        closeConnections(server);
        identity.hostKey.wipe();
        logger.info({ event: 'stop', socket: listener.path }, 'daemon stopped');
      })();
      return closing;
    },
  };
}

/**
 * Turns off core dumps and clears the dumpable flag, so neither a crash nor
 * another process of the same user (without CAP_SYS_PTRACE) can read leased
 * secrets or the host key from this process's memory. Returns the dumpable
 * flag as read back afterwards, for the start log.
 */
function protectMemory(): boolean {
  const addon = loadAddon();
  try {
    addon.protectMemory();
    return addon.isDumpable();
  } catch (cause) {
    throw new DaemonError('memory_protection_failed', `turning off core dumps and ptrace for the daemon failed (${(cause as { code?: string }).code ?? 'unknown error'})`, { cause });
  }
}

/** Authenticates once. A broker that cannot be reached is retried later; a rejected certificate is fatal. */
async function authenticateAtStart(link: BrokerLink, logger: Logger): Promise<void> {
  try {
    await link.authenticate();
  } catch (error) {
    const code = errorCode(error);
    if (code === 'network_error' || code === 'invalid_response') {
      logger.warn({ event: 'broker-unreachable', broker: link.url, code }, 'the broker is unreachable; retrying in the background');
      return;
    }
    throw new DaemonError('certificate_invalid', `the broker at ${link.url} rejected this consumer (${code}): the certificate may be revoked or unknown to it. Hint: ask the admin to check \`stillvault daemon\` enrollment`, { cause: error });
  }
}

/**
 * Fetches the broker's audit head and remembers it, so the next request
 * signs the head this daemon saw. An older head than one seen before is
 * logged as a warning: the broker may have trimmed or forked the log.
 */
async function refreshAuditHead(link: BrokerLink, seen: SeenStore, logger: Logger): Promise<void> {
  try {
    // NOTE: the head's broker signature is not checked, because the daemon pins no broker key; it only records what it saw.
    const head = await link.call((client) => client.auditHead());
    const accepted = await seen.recordAuditHead({ seq: head.body.seq, hash: head.body.hash });
    if (!accepted) logger.warn({ event: 'audit-head-regressed', seq: head.body.seq, known: seen.auditHead?.seq }, 'the broker served an older or different audit head than seen before');
  } catch (error) {
    logger.warn({ event: 'audit-head-failed', code: errorCode(error) }, 'fetching the audit head failed');
  }
}

function closeConnections(server: Server): void {
  server.closeAllConnections();
}

/** Resolves a group name or numeric id to a gid, reading /etc/group for names. Throws DaemonError('socket_permissions_failed'). */
export function resolveGroup(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  let text: string;
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch (cause) {
    throw new DaemonError('socket_permissions_failed', `reading /etc/group to resolve group ${name} failed`, { cause });
  }
  for (const line of text.split('\n')) {
    const [groupName, , gid] = line.split(':');
    if (groupName === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new DaemonError('socket_permissions_failed', `no group named ${JSON.stringify(name)} in /etc/group; give a group id instead`);
}
