import type { Logger } from 'pino';
import { checkSecretPath, MAX_LEASE_SECONDS, MAX_REQUEST_PATHS, ProtocolError, verifyRevocation, type SecretBytes } from '../protocol/index.js';
import { errorCode, type BrokerLink } from './broker-link.js';
import { DaemonError } from './errors.js';
import type { DaemonIdentity } from './identity.js';
import type { Lease, LeaseStore, LeaseSummary } from './leases.js';
import type { CallerIdentity } from './peer.js';
import type { Progress, RequestFlow } from './flow.js';
import type { LocalRules } from './rules.js';

/**
 * The daemon's operations, one method per socket API endpoint. Each takes the
 * caller as the kernel identified it; the HTTP layer (api.ts) only parses
 * and checks transport details.
 */

export const MAX_REASON_LENGTH = 1024;
/**
 * Secrets calls one uid may have in progress at once. Each can wait minutes
 * for a human and pushes a notification to every approver, so without a cap
 * one local user could flood approvers until someone approves by mistake.
 */
export const MAX_SECRETS_CALLS_PER_UID = 8;

export interface SecretsQuery {
  paths: string[];
  reason: string;
  leaseSeconds: number | undefined;
}

/** The final outcome of POST /v1/secrets. The lease store owns the values: encode them at once and never wipe them here. */
export interface SecretsResult {
  values: Map<string, SecretBytes>;
  lease: { id: string; expires: number; remaining: number };
}

export interface ServiceOptions {
  identity: DaemonIdentity;
  rules: LocalRules;
  leases: LeaseStore;
  flow: RequestFlow;
  link: BrokerLink;
  logger: Logger;
  socketPath: string;
  defaultLeaseSeconds: number;
}

export class DaemonService {
  readonly #options: ServiceOptions;
  /** Secrets calls in progress, by caller uid. */
  readonly #callsInProgress = new Map<number, number>();

  constructor(options: ServiceOptions) {
    this.#options = options;
  }

  status(caller: CallerIdentity): Record<string, unknown> {
    const { identity, link, leases, flow, socketPath } = this.#options;
    return {
      ok: true,
      org: identity.trust.org,
      orgName: identity.state.orgName,
      consumer: identity.certificate.body.consumer,
      name: identity.certificate.body.name,
      certificateExpires: identity.certificate.body.expires,
      broker: link.url,
      brokerConnected: link.connected,
      pendingRequests: flow.pending,
      leases: leases.list(caller.uid).length,
      socket: socketPath,
      caller: { uid: caller.uid, pid: caller.pid, exe: caller.exe },
    };
  }

  /** Checks the body of POST /v1/secrets. Throws DaemonError('invalid_request'). */
  parseSecretsQuery(body: unknown): SecretsQuery {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be a JSON object');
    const { paths, reason, leaseSeconds, ...rest } = body as Record<string, unknown>;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw invalid(`unknown field ${JSON.stringify(unknown[0])}; expected paths, reason, leaseSeconds`);
    if (!Array.isArray(paths) || paths.length === 0 || paths.length > MAX_REQUEST_PATHS) {
      throw invalid(`paths must be an array of 1 to ${MAX_REQUEST_PATHS} secret paths`);
    }
    for (const path of paths) {
      try {
        checkSecretPath(path, 'path');
      } catch (cause) {
        throw new DaemonError('invalid_request', (cause as Error).message, { cause });
      }
    }
    if (new Set(paths).size !== paths.length) throw invalid('paths must not repeat a path');
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON_LENGTH)) {
      throw invalid(`reason must be a string of at most ${MAX_REASON_LENGTH} characters`);
    }
    if (leaseSeconds !== undefined && (!Number.isSafeInteger(leaseSeconds) || (leaseSeconds as number) < 1 || (leaseSeconds as number) > MAX_LEASE_SECONDS)) {
      throw invalid(`leaseSeconds must be an integer from 1 to ${MAX_LEASE_SECONDS}`);
    }
    return { paths: paths as string[], reason: reason ?? '', leaseSeconds: leaseSeconds as number | undefined };
  }

  /** Checks every path against the local rules. Throws DaemonError('caller_not_allowed') naming the first path the rules do not allow. */
  authorize(caller: CallerIdentity, paths: readonly string[]): void {
    for (const path of paths) this.#options.rules.authorize(caller, path);
  }

  /**
   * Reserves one of the caller's uid's MAX_SECRETS_CALLS_PER_UID slots for a
   * secrets call, and returns the function that frees it (idempotent).
   * Throws DaemonError('too_many_requests') when every slot is taken.
   */
  beginSecretsCall(caller: CallerIdentity): () => void {
    const uid = caller.uid;
    const count = this.#callsInProgress.get(uid) ?? 0;
    if (count >= MAX_SECRETS_CALLS_PER_UID) {
      this.#options.logger.warn({ event: 'too-many-requests', uid, pid: caller.pid, inProgress: count }, 'secrets call rejected: too many in progress for this uid');
      throw new DaemonError('too_many_requests', `uid ${uid} already has ${count} secrets requests in progress, the maximum; wait for one to end`);
    }
    this.#callsInProgress.set(uid, count + 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const left = (this.#callsInProgress.get(uid) ?? 1) - 1;
      if (left > 0) this.#callsInProgress.set(uid, left);
      else this.#callsInProgress.delete(uid);
    };
  }

  /**
   * Serves paths leased to this caller (same uid and executable) from memory
   * and requests all the others in one request. `isConnected` reports whether
   * the caller still waits; a release that arrives after it left is wiped
   * rather than kept. `callerLeft` aborts when the caller closes its
   * connection, which cancels a pending request at the broker.
   */
  async secrets(
    caller: CallerIdentity, query: SecretsQuery, onProgress: (event: Progress) => void, isConnected: () => boolean, callerLeft?: AbortSignal,
  ): Promise<SecretsResult> {
    const { leases, flow, logger } = this.#options;
    const owner = { uid: caller.uid, exe: caller.exe };
    const values = new Map<string, SecretBytes>();
    const used: Lease[] = [];
    const missing: string[] = [];
    for (const path of query.paths) {
      const hit = leases.find(owner, path);
      if (hit === undefined) {
        missing.push(path);
      } else {
        values.set(path, hit.value);
        used.push(hit.lease);
      }
    }

    if (missing.length > 0) {
      const leaseSeconds = query.leaseSeconds ?? this.#options.defaultLeaseSeconds;
      const released = await flow.release(caller, missing, query.reason, leaseSeconds, onProgress, callerLeft);
      const lease: Lease = {
        id: released.request, owner, paths: missing, granted: released.granted, expires: released.granted + released.leaseSeconds,
      };
      if (!isConnected()) {
        for (const value of released.values.values()) value.wipe();
        logger.warn({ event: 'caller-disconnected', request: released.request, pid: caller.pid }, 'caller left before the release; values wiped');
        throw new DaemonError('caller_disconnected', `the caller closed its connection before request ${released.request} was released`);
      }
      leases.add(lease, released.values);
      logger.info({ event: 'lease-created', lease: lease.id, uid: owner.uid, exe: owner.exe, paths: missing, expires: lease.expires }, 'lease created');
      // Look the values up again through the store, which now owns them.
      for (const path of missing) {
        const hit = leases.find(owner, path);
        if (hit === undefined) throw new DaemonError('request_expired', `the lease of request ${lease.id} ended before it could be served`);
        values.set(path, hit.value);
      }
      used.push(lease);
    } else {
      logger.debug({ event: 'lease-hit', uid: owner.uid, pid: caller.pid, leases: used.map((lease) => lease.id) }, 'served from lease');
    }

    const soonest = used.reduce((a, b) => (b.expires < a.expires ? b : a));
    return { values, lease: { id: soonest.id, expires: soonest.expires, remaining: leases.remaining(soonest) } };
  }

  listLeases(caller: CallerIdentity): LeaseSummary[] {
    return this.#options.leases.list(caller.uid);
  }

  /** Ends a lease of the caller's own uid. Throws DaemonError('not_found') for any other id. */
  revokeLease(caller: CallerIdentity, id: string): void {
    const lease = this.#options.leases.get(id);
    if (lease?.owner.uid !== caller.uid) throw new DaemonError('not_found', `no lease ${id} for uid ${caller.uid}`);
    this.#options.leases.revoke(id);
    this.#options.logger.info({ event: 'lease-revoked', lease: id, by: 'caller', uid: caller.uid, pid: caller.pid }, 'lease revoked by its owner');
  }

  /**
   * Handles one broker WebSocket message. A `lease-revoked` message carries
   * the admin's signed revocation of a lease, whose id is the request id.
   * Only this method and syncLeaseRevocations act on lease revocations.
   */
  handleBrokerMessage(message: { type: string; [key: string]: unknown }): void {
    const { flow, logger } = this.#options;
    if (message.type === 'lease-revoked') {
      void this.#applyLeaseRevocation(message.revocation, typeof message.request === 'string' ? message.request : undefined);
      return;
    }
    if (message.type === 'error') {
      logger.warn({ event: 'broker-error', code: errorCode(message), message: message.message }, 'the broker reported an error');
      return;
    }
    flow.handleMessage(message);
  }

  /**
   * Fetches the revocation list and wipes every held lease that a verified
   * lease revocation names. Runs after each broker (re)connect, so a
   * revocation pushed while the daemon was offline still takes effect.
   */
  async syncLeaseRevocations(): Promise<void> {
    const { link, leases, logger } = this.#options;
    if (leases.size === 0) return;
    let revocations: unknown[];
    try {
      revocations = await link.call((client) => client.listRevocations());
    } catch (error) {
      logger.warn({ event: 'revocations-failed', code: errorCode(error) }, 'fetching revocations failed');
      return;
    }
    for (const revocation of revocations) {
      const body = (revocation as { body?: { subject?: unknown; id?: unknown } } | null)?.body;
      if (body?.subject === 'lease' && typeof body.id === 'string' && leases.get(body.id) !== undefined) {
        await this.#applyLeaseRevocation(revocation, body.id);
      }
    }
  }

  /** Wipes a lease once its revocation verifies against the Org Identity key as a lease revocation for `request`. */
  async #applyLeaseRevocation(revocation: unknown, request: string | undefined): Promise<void> {
    const { identity, leases, logger } = this.#options;
    let verified;
    try {
      verified = await verifyRevocation(revocation, identity.trust);
      if (verified.body.subject !== 'lease' || (request !== undefined && verified.body.id !== request)) {
        throw new ProtocolError('binding_mismatch', `revocation is for ${verified.body.subject} ${verified.body.id}, not for lease ${request ?? '(none)'}`);
      }
    } catch (error) {
      // The broker alone cannot end a lease: only the Org Identity key signs lease revocations.
      logger.warn({ event: 'lease-revocation-invalid', lease: request, code: errorCode(error), message: (error as Error).message }, 'lease revocation did not verify; lease kept');
      return;
    }
    const held = leases.revoke(verified.body.id);
    logger.info({ event: 'lease-revoked', lease: verified.body.id, by: 'admin', held }, 'lease revoked by the admin');
  }
}

function invalid(message: string): DaemonError {
  return new DaemonError('invalid_request', message);
}
