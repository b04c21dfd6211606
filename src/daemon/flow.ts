import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { BrokerClientError, type RequestStatus } from '../broker/client.js';
import {
  CLOCK_SKEW_SECONDS, createRequest, MAX_NAME_LENGTH, newId, SealingPrivateKey, verifyRequest,
  type Requester, type RequestBody, type SecretBytes, type Verified,
} from '../protocol/index.js';
import { errorCode, type BrokerLink } from './broker-link.js';
import { DaemonError } from './errors.js';
import type { DaemonIdentity } from './identity.js';
import type { CallerIdentity } from './peer.js';
import { fetchOrgObjects, openRelease, verifyDenial } from './release.js';
import type { SeenStore } from './seen.js';

/**
 * One request's life, daemon side. The daemon mints an ephemeral X25519 key,
 * signs the request with the host key, submits it and relays progress. It
 * waits for the result over the WebSocket, and polls the broker after a
 * reconnect and at expiry. Then it verifies and opens the release. The ephemeral private key is wiped when
 * the request ends, whatever the outcome.
 */

/** Progress events the socket API streams to the caller while a request waits. */
export type Progress =
  | { type: 'requested'; request: string; eligible: number }
  | { type: 'delivered'; request: string; delivered: number; eligible: number }
  | { type: 'approved'; request: string; device: string; by: string; leaseSeconds: number; askedLeaseSeconds: number }
  | { type: 'denied'; request: string; device: string | null; by: string | null }
  | { type: 'expired'; request: string }
  | { type: 'undelivered'; request: string }
  | { type: 'refused'; request: string; codes: string[] };

export interface Released {
  request: string;
  values: Map<string, SecretBytes>;
  /** Unix seconds of the approval, clamped to the request's lifetime. */
  granted: number;
  leaseSeconds: number;
}

/** A failure with a stable code that is not a DaemonError: a broker or protocol code passed through. */
export class RequestError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RequestError';
    this.code = code;
  }
}

interface Outcome {
  state: RequestStatus['state'];
  approval: unknown;
  secrets: unknown;
  /** Codes the approvers sent when every one of them refused the request. */
  codes?: string[];
  /** Set when the daemon stopped waiting while the request was still pending: its caller left or the daemon stops. */
  abandoned?: 'caller' | 'daemon';
}

interface Waiter {
  request: Verified<RequestBody>;
  onProgress: (event: Progress) => void;
  deliver: (outcome: Outcome) => void;
  /** Fires at expiry plus a grace period. */
  timer: NodeJS.Timeout;
  /** Set once an outcome was taken, so a poll and a WebSocket result cannot both settle it. */
  settled: boolean;
  /** Set once the broker accepted the request, so only submitted requests are cancelled there. */
  submitted: boolean;
  /** The reason the daemon stopped waiting before the outcome arrived, if it did. */
  abandoned?: 'caller' | 'daemon';
}

export interface FlowOptions {
  identity: DaemonIdentity;
  link: BrokerLink;
  seen: SeenStore;
  logger: Logger;
  requestLifetimeSeconds: number;
}

/** Extra seconds past a request's expiry before the daemon polls the broker one last time and gives up. */
const EXPIRY_GRACE_SECONDS = 5;
/** How long a cancellation may wait for the broker, so a stopping daemon is not held up by an unresponsive one. */
const CANCEL_TIMEOUT_MS = 5000;
const MAX_USER_LENGTH = 64;
const MAX_CMDLINE_ARGS = 256;
const MAX_CMDLINE_ARG_LENGTH = 4096;

export class RequestFlow {
  readonly #options: FlowOptions;
  /** Requests waiting for their outcome, by request id. */
  readonly #waiters = new Map<string, Waiter>();

  constructor(options: FlowOptions) {
    this.#options = options;
  }

  get pending(): number {
    return this.#waiters.size;
  }

  /**
   * Requests `paths` for `caller` in one request and resolves with the
   * decrypted values. When `signal` aborts (the caller left) before the
   * outcome arrives, the request is cancelled at the broker and this rejects
   * with caller_disconnected.
   */
  async release(
    caller: CallerIdentity, paths: string[], reason: string, leaseSeconds: number, onProgress: (event: Progress) => void, signal?: AbortSignal,
  ): Promise<Released> {
    const { identity, link, logger } = this.#options;
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    try {
      const request = await this.#sign(caller, paths, reason, leaseSeconds, ephemeral);
      const id = request.body.id;
      const outcome = this.#wait(request, onProgress);
      const waiter = this.#waiters.get(id);
      if (waiter === undefined) throw new Error(`request ${id} has no waiter`);
      const abandon = () => { void this.#abandon(id, 'caller'); };
      signal?.addEventListener('abort', abandon, { once: true });
      if (signal?.aborted === true) abandon();
      try {
        let eligible: number;
        try {
          ({ eligible } = await link.call((client) => client.submitRequest(request)));
        } catch (error) {
          this.#take(id, waiter, { state: 'pending', approval: null, secrets: null });
          const failure = brokerFailure(error, `submitting request ${id}`);
          logger.warn({ event: 'request-submit-failed', request: id, paths, uid: caller.uid, pid: caller.pid, code: errorCode(failure) }, 'submitting the request failed');
          throw failure;
        }
        if (waiter.abandoned === undefined) {
          waiter.submitted = true;
        } else {
          // The caller left or the daemon began stopping while the broker was accepting the request.
          await this.#cancel(id, waiter.abandoned);
        }
        logger.info({ event: 'request-submitted', request: id, paths, uid: caller.uid, pid: caller.pid, exe: caller.exe, eligible }, 'request submitted');
        onProgress({ type: 'requested', request: id, eligible });

        const result = await outcome;
        return await this.#open(request, ephemeral, result, onProgress, identity);
      } finally {
        signal?.removeEventListener('abort', abandon);
      }
    } finally {
      ephemeral.wipe();
    }
  }

  /** Stops waiting for a pending request and cancels it at the broker when it was submitted there. */
  #abandon(id: string, why: 'caller' | 'daemon'): Promise<void> {
    const waiter = this.#waiters.get(id);
    if (waiter === undefined) return Promise.resolve();
    waiter.abandoned = why;
    this.#take(id, waiter, { state: 'pending', approval: null, secrets: null, abandoned: why });
    return waiter.submitted ? this.#cancel(id, why) : Promise.resolve();
  }

  /** Cancels a pending request at the broker, best effort: a failure is logged and the request expires there instead. */
  async #cancel(id: string, why: 'caller' | 'daemon'): Promise<void> {
    const { link, logger } = this.#options;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new DaemonError('broker_unavailable', `cancelling timed out: the broker did not respond within ${CANCEL_TIMEOUT_MS} ms`)); }, CANCEL_TIMEOUT_MS);
    });
    try {
      await Promise.race([link.call((client) => client.cancelRequest(id)), timeout]);
      logger.info({ event: 'request-cancelled', request: id, why }, why === 'caller' ? 'caller left; request cancelled at the broker' : 'daemon stopping; request cancelled at the broker');
    } catch (error) {
      logger.warn({ event: 'request-cancel-failed', request: id, why, code: errorCode(error), message: (error as Error).message }, 'cancelling the request at the broker failed; it stays pending until it expires');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Routes a `delivered` or `result` WebSocket message to its waiting request. */
  handleMessage(message: { type: string; request?: unknown; [key: string]: unknown }): void {
    const id = typeof message.request === 'string' ? message.request : undefined;
    if (id === undefined) return;
    const waiter = this.#waiters.get(id);
    if (message.type === 'delivered') {
      waiter?.onProgress({ type: 'delivered', request: id, delivered: Number(message.delivered), eligible: Number(message.eligible) });
      return;
    }
    if (message.type !== 'result') return;
    if (waiter === undefined) {
      // A result for a request this daemon no longer waits for (restart, replay):
      // its ephemeral key is gone, so nothing can be opened. Acknowledge it so the broker stops resending.
      this.#options.logger.warn({ event: 'result-ignored', request: id, state: message.state }, 'result for a request that is not pending here');
      this.#options.link.ack(id);
      return;
    }
    const codes = Array.isArray(message.codes) ? message.codes.filter((code): code is string => typeof code === 'string') : [];
    this.#take(id, waiter, { state: message.state as RequestStatus['state'], approval: message.approval, secrets: message.secrets, codes });
  }

  /** Polls the broker for every pending request; runs after each WebSocket (re)connect. */
  pollPending(): void {
    for (const id of this.#waiters.keys()) void this.#poll(id);
  }

  /** Fails every pending request and cancels each at the broker (daemon shutdown); resolves once every cancellation was tried. */
  async abortAll(): Promise<void> {
    const ids = [...this.#waiters.keys()];
    await Promise.all(ids.map((id) => this.#abandon(id, 'daemon')));
  }

  async #sign(caller: CallerIdentity, paths: string[], reason: string, leaseSeconds: number, ephemeral: SealingPrivateKey): Promise<Verified<RequestBody>> {
    const { identity, seen, requestLifetimeSeconds } = this.#options;
    const created = Math.floor(Date.now() / 1000);
    const signed = await createRequest(identity.hostKey, {
      org: identity.trust.org,
      id: newId(),
      consumer: identity.certificate.body.consumer,
      host: hostname().slice(0, MAX_NAME_LENGTH) || 'unknown',
      paths,
      requester: requesterOf(caller),
      reason,
      leaseSeconds,
      ephemeralKey: ephemeral.publicKey.toBase64Url(),
      created,
      expires: created + requestLifetimeSeconds,
      auditHead: seen.auditHead,
    });
    return verifyRequest(signed, identity.trust, identity.certificate, created);
  }

  /** Registers a waiter and returns its outcome; at expiry the broker is asked once more before giving up. */
  #wait(request: Verified<RequestBody>, onProgress: (event: Progress) => void): Promise<Outcome> {
    const id = request.body.id;
    return new Promise<Outcome>((resolve) => {
      const deadline = (request.body.expires + EXPIRY_GRACE_SECONDS) * 1000 - Date.now();
      const timer = setTimeout(() => {
        void this.#poll(id).then(() => {
          const waiter = this.#waiters.get(id);
          if (waiter !== undefined) this.#take(id, waiter, { state: 'expired', approval: null, secrets: null });
        });
      }, Math.max(0, deadline));
      this.#waiters.set(id, { request, onProgress, settled: false, submitted: false, timer, deliver: resolve });
    });
  }

  #take(id: string, waiter: Waiter, outcome: Outcome): void {
    if (waiter.settled) return;
    waiter.settled = true;
    clearTimeout(waiter.timer);
    this.#waiters.delete(id);
    waiter.deliver(outcome);
  }

  async #poll(id: string): Promise<void> {
    try {
      const status = await this.#options.link.call((client) => client.getRequest(id));
      const waiter = this.#waiters.get(id);
      if (waiter !== undefined && status.state !== 'pending') {
        this.#take(id, waiter, { state: status.state, approval: status.approval, secrets: status.secrets, codes: status.refusals ?? [] });
      }
    } catch (error) {
      this.#options.logger.warn({ event: 'poll-failed', request: id, code: errorCode(error) }, 'polling a pending request failed');
    }
  }

  /** Turns an outcome into released values or a coded error, records it as seen and acknowledges it. */
  async #open(request: Verified<RequestBody>, ephemeral: SealingPrivateKey, outcome: Outcome, onProgress: (event: Progress) => void, identity: DaemonIdentity): Promise<Released> {
    const { link, seen, logger } = this.#options;
    const id = request.body.id;
    const now = Math.floor(Date.now() / 1000);
    const forgetAfter = request.body.expires + CLOCK_SKEW_SECONDS;
    try {
      if (outcome.abandoned === 'caller') throw new DaemonError('caller_disconnected', `the caller closed its connection before request ${id} ended; the request was cancelled`);
      if (outcome.state === 'pending') throw new DaemonError('daemon_stopping', `the daemon stopped before request ${id} ended`);
      if (seen.hasRequest(id)) throw new DaemonError('request_replayed', `request ${id} was already decided or released, so a second result for it is rejected`);

      if (outcome.state === 'expired' || outcome.state === 'undelivered') {
        onProgress({ type: outcome.state, request: id });
        throw outcome.state === 'expired'
          ? new DaemonError('request_expired', `request ${id} expired before an approver decided`)
          : new DaemonError('request_undelivered', `no approver received request ${id}; check that an approver device is online`);
      }

      if (outcome.state === 'cancelled') throw new DaemonError('request_cancelled', `request ${id} was cancelled at the broker`);
      if (outcome.state === 'refused') {
        const codes = outcome.codes ?? [];
        await seen.recordRequest(id, forgetAfter);
        onProgress({ type: 'refused', request: id, codes });
        throw new DaemonError('request_refused', `request ${id} was refused by every approver (${codes.length > 0 ? codes.join(', ') : 'no code given'}): it failed verification on their devices`);
      }

      const objects = await link.call((client) => fetchOrgObjects(client)).catch((error: unknown) => { throw brokerFailure(error, 'fetching certificates and policies'); });
      const input = { trust: identity.trust, consumerCert: identity.certificate, request, approval: outcome.approval, objects, seen, now };

      if (outcome.state === 'denied') {
        let by: { device: string; name: string } | null = null;
        try {
          by = { device: (outcome.approval as { body: { device: string } }).body.device, name: (await verifyDenial(input)).deviceName };
        } catch (error) {
          logger.warn({ event: 'denial-unverified', request: id, code: errorCode(error) }, 'denial did not verify; reporting it without a name');
        }
        await seen.recordRequest(id, forgetAfter);
        onProgress({ type: 'denied', request: id, device: by?.device ?? null, by: by?.name ?? null });
        throw new DaemonError('request_denied', by === null ? `request ${id} was denied` : `request ${id} was denied by ${by.name}`);
      }

      const opened = await openRelease({ ...input, ephemeralKey: ephemeral, secrets: outcome.secrets });
      try {
        await seen.recordRequest(id, forgetAfter, { policies: { [opened.policy.body.name]: opened.policy.body.version }, secrets: opened.secretVersions });
      } catch (error) {
        for (const value of opened.values.values()) value.wipe();
        throw error;
      }
      const granted = Math.min(Math.max(opened.approval.body.created, request.body.created), request.body.expires, now);
      logger.info({ event: 'request-released', request: id, device: opened.device.body.device, secretVersions: opened.secretVersions, leaseSeconds: opened.approval.body.leaseSeconds }, 'request released');
      onProgress({
        type: 'approved', request: id, device: opened.device.body.device, by: opened.device.body.name,
        leaseSeconds: opened.approval.body.leaseSeconds, askedLeaseSeconds: request.body.leaseSeconds,
      });
      return { request: id, values: opened.values, granted, leaseSeconds: opened.approval.body.leaseSeconds };
    } catch (error) {
      logger.warn({ event: 'request-failed', request: id, state: outcome.state, code: errorCode(error), message: (error as Error).message }, 'request did not release');
      throw error;
    } finally {
      if (outcome.state !== 'pending') link.ack(id);
    }
  }
}

/** Builds the signed requester from the identified caller, cut to the protocol's length limits. */
function requesterOf(caller: CallerIdentity): Requester {
  const cmdline = caller.cmdline.slice(0, MAX_CMDLINE_ARGS).map((arg) => arg.slice(0, MAX_CMDLINE_ARG_LENGTH));
  return { uid: caller.uid, gid: caller.gid, user: (caller.user ?? '').slice(0, MAX_USER_LENGTH), pid: caller.pid, exe: caller.exe, cmdline };
}

/** Maps a broker client error: unreachable becomes broker_unavailable, anything else keeps the broker's code. */
function brokerFailure(error: unknown, action: string): Error {
  if (error instanceof BrokerClientError) {
    if (error.code === 'network_error' || error.code === 'invalid_response') {
      return new DaemonError('broker_unavailable', `${action} failed: the broker is unreachable or returned a response that is not JSON`, { cause: error });
    }
    // The CLI appends the code in brackets, so the message carries only the broker's words.
    return new RequestError(error.code, `${action} failed: ${error.message}`, { cause: error });
  }
  return error as Error;
}
