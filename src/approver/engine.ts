import { BrokerClientError, type BrokerClient } from '../broker/client.js';
import {
  approveRequest, CLOCK_SKEW_SECONDS, denyRequest, ProtocolError, verifyRevocation,
  type AuditHeadRef, type DeviceCertBody, type RevocationBody, type Verified,
} from '../protocol/index.js';
import type { ApproverState, SeenState } from '../local/state.js';
import { describeRequest } from './display.js';
import { refusalCode } from './errors.js';
import type { DeviceKeys } from './keys.js';
import { approverTrust, loadSeenState, saveSeenState, verifiedOwnCertificate, type ApproverPaths } from './state.js';
import { recordDecision, verifyBundle, type VerifiedBundle } from './verify.js';

/**
 * The terminal approver's decision loop, kept apart from the CLI so another
 * front end can drive it. It acknowledges each delivered request at once,
 * verifies it fully, shows it and asks for a decision. Then it signs and
 * sends the approval or denial with keys unlocked for that one decision and
 * wiped after.
 */

export type Decision = 'approve' | 'deny' | 'skip' | 'quit';

export interface Outcome {
  request: string;
  result: 'approved' | 'denied' | 'refused' | 'skipped' | 'settled';
  /** Error code for `refused` (a ProtocolError or ApproverError code) and for `settled`. */
  code?: string;
  message?: string;
  paths?: string[];
  leaseSeconds?: number;
}

export interface ApproverFrontEnd {
  /** Shows text to the person deciding. */
  show(text: string): void;
  /** Asks for one decision. */
  decide(verified: VerifiedBundle): Promise<Decision>;
  /** Unlocks the device keys for one use; the engine wipes them. */
  unlockKeys(): Promise<DeviceKeys>;
  /** Reports what happened to one request. */
  report(outcome: Outcome): void;
}

/** Seconds after a request's expiry that its id stays in seen.json; past expiry + skew it fails verification anyway. */
const FORGET_AFTER_EXPIRY_SECONDS = 86_400;
const TOKEN_REFRESH_MARGIN_SECONDS = 30;

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'internal_error';
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class ApproverEngine {
  readonly #paths: ApproverPaths;
  readonly #state: ApproverState;
  readonly #client: BrokerClient;
  readonly #frontEnd: ApproverFrontEnd;
  /** Request ids handled in this run (decided, refused or settled), so repeated deliveries are not asked twice. */
  readonly #handled = new Set<string>();
  #tokenExpires = 0;
  #seen: SeenState | null = null;
  #device: Verified<DeviceCertBody> | null = null;
  #revocations: Verified<RevocationBody>[] = [];
  #quit = false;
  refusals = 0;

  constructor(paths: ApproverPaths, state: ApproverState, client: BrokerClient, frontEnd: ApproverFrontEnd) {
    this.#paths = paths;
    this.#state = state;
    this.#client = client;
    this.#frontEnd = frontEnd;
  }

  get quitRequested(): boolean {
    return this.#quit;
  }

  // A method rather than a field read, because a decision made inside an awaited call can set #quit.
  #stopping(): boolean {
    return this.#quit;
  }

  /** Authenticates, loads revocations and seen state, and checks this device's own certificate. */
  async start(): Promise<void> {
    await this.#authenticate();
    this.#seen = await loadSeenState(this.#paths.seen);
    await this.#refreshRevocations();
  }

  async #authenticate(): Promise<void> {
    const keys = await this.#frontEnd.unlockKeys();
    try {
      const { expires } = await this.#client.authenticate('device', this.#state.device, keys.signing);
      this.#tokenExpires = expires;
    } finally {
      keys.wipe();
    }
  }

  async #ensureToken(): Promise<void> {
    if (nowSeconds() >= this.#tokenExpires - TOKEN_REFRESH_MARGIN_SECONDS) await this.#authenticate();
  }

  async #refreshRevocations(): Promise<void> {
    const trust = approverTrust(this.#state);
    const verified: Verified<RevocationBody>[] = [];
    for (const revocation of await this.#client.listRevocations()) {
      try {
        verified.push(await verifyRevocation(revocation, trust));
      } catch {
        // Not signed by the pinned OIK: not a revocation of this org.
      }
    }
    this.#revocations = verified;
    this.#device = await verifiedOwnCertificate(this.#state, nowSeconds(), verified);
  }

  /** Handles the requests pending at the broker now; returns how many the broker listed. */
  async handlePending(): Promise<number> {
    await this.#ensureToken();
    const bundles = await this.#client.listPendingRequests();
    for (const bundle of bundles) {
      if (this.#quit) break;
      await this.handle(requestIdOf(bundle), bundle);
    }
    return bundles.length;
  }

  /** Acknowledges, verifies, shows and decides one delivered request. */
  async handle(requestId: string, bundle: unknown): Promise<void> {
    if (this.#handled.has(requestId) || this.#quit) return;
    this.#handled.add(requestId);
    await this.#ensureToken();
    await this.#acknowledge(requestId);

    const verified = await this.#verify(requestId, bundle);
    if (verified === null) return;
    if (!(await this.#stillPending(requestId))) return;

    const grantedLease = Math.min(verified.request.body.leaseSeconds, verified.policy.body.maxLeaseSeconds);
    this.#frontEnd.show(describeRequest(verified, nowSeconds(), grantedLease));
    const decision = await this.#frontEnd.decide(verified);
    if (decision === 'quit' || decision === 'skip') {
      if (decision === 'quit') this.#quit = true;
      this.#handled.delete(requestId);
      this.#frontEnd.report({ request: requestId, result: 'skipped' });
      return;
    }
    // The person may answer long after the request was shown.
    if (this.#refuseIfExpired(verified)) return;
    await this.#send(verified, decision, grantedLease);
  }

  /**
   * Refuses a request past its expiry, with no clock-skew leeway: a decision
   * made late should not help whoever holds the request back, and the broker
   * rejects it anyway. Returns true when the request was refused.
   */
  #refuseIfExpired(verified: VerifiedBundle): boolean {
    const { id, expires } = verified.request.body;
    const now = nowSeconds();
    if (now <= expires) return false;
    this.refusals++;
    this.#frontEnd.report({ request: id, result: 'refused', code: 'expired', message: `request ${id} expired at ${expires}, now is ${now}` });
    return true;
  }

  async #acknowledge(requestId: string): Promise<void> {
    try {
      await this.#client.acknowledgeRequest(requestId);
    } catch (error) {
      // Delivery is best effort: a request that settled meanwhile cannot be acknowledged.
      this.#frontEnd.show(`could not acknowledge request ${requestId}: ${errorMessage(error)} (${errorCode(error)})`);
    }
  }

  async #verify(requestId: string, bundle: unknown): Promise<VerifiedBundle | null> {
    if (this.#seen === null || this.#device === null) throw new Error('ApproverEngine.start() was not called');
    try {
      await this.#refreshRevocations();
      const verified = await verifyBundle(bundle, {
        trust: approverTrust(this.#state), device: this.#device, seen: this.#seen, revocations: this.#revocations, now: nowSeconds(),
      });
      if (verified.request.body.id !== requestId) throw Object.assign(new Error(`bundle is for request ${verified.request.body.id}`), { code: 'bundle_mismatch' });
      if (this.#refuseIfExpired(verified)) return null;
      return verified;
    } catch (error) {
      this.refusals++;
      this.#frontEnd.report({ request: requestId, result: 'refused', code: errorCode(error), message: errorMessage(error) });
      await this.#refuseAtBroker(requestId, error);
      return null;
    }
  }

  /**
   * Tells the broker this device refused the request, so the agent learns it
   * at once rather than at expiry, and the broker stops listing the request
   * for this device. Best effort: a failure is shown and the request expires.
   */
  async #refuseAtBroker(requestId: string, error: unknown): Promise<void> {
    try {
      await this.#ensureToken();
      await this.#client.refuseRequest(requestId, refusalCode(error));
    } catch (failure) {
      this.#frontEnd.show(`could not report the refusal of request ${requestId} to the broker: ${errorMessage(failure)} (${errorCode(failure)})`);
    }
  }

  async #stillPending(requestId: string): Promise<boolean> {
    const status = await this.#client.getRequest(requestId);
    if (status.state === 'pending') return true;
    this.#frontEnd.report({ request: requestId, result: 'settled', code: status.state, message: `request is already ${status.state}` });
    return false;
  }

  async #auditHead(): Promise<AuditHeadRef | null> {
    try {
      const head = await this.#client.auditHead();
      return { seq: head.body.seq, hash: head.body.hash };
    } catch {
      return this.#seen?.auditHead ?? null;
    }
  }

  async #send(verified: VerifiedBundle, decision: 'approve' | 'deny', leaseSeconds: number): Promise<void> {
    const device = this.#device;
    const seen = this.#seen;
    if (device === null || seen === null) throw new Error('ApproverEngine.start() was not called');
    const requestId = verified.request.body.id;
    const auditHead = await this.#auditHead();

    const keys = await this.#frontEnd.unlockKeys();
    let approval;
    let refused: ProtocolError | null = null;
    try {
      approval = decision === 'approve'
        ? await approveRequest({
          deviceKey: keys.signing, sealingKey: keys.sealing, deviceCert: device, request: verified.request, secrets: verified.secrets,
          leaseSeconds, created: nowSeconds(), auditHead,
        })
        : await denyRequest({ deviceKey: keys.signing, device: device.body.device, request: verified.request, created: nowSeconds(), auditHead });
    } catch (error) {
      // A grant that does not open, or an M-of-N grant this version cannot re-seal, ends this request only.
      if (!(error instanceof ProtocolError)) throw error;
      this.refusals++;
      this.#frontEnd.report({ request: requestId, result: 'refused', code: error.code, message: error.message });
      refused = error;
    } finally {
      keys.wipe();
    }
    if (refused !== null) {
      await this.#refuseAtBroker(requestId, refused);
      return;
    }
    if (approval === undefined) throw new Error(`no approval was signed for request ${requestId}`);

    recordDecision(seen, verified, verified.request.body.expires + CLOCK_SKEW_SECONDS + FORGET_AFTER_EXPIRY_SECONDS);
    if (auditHead !== null && (seen.auditHead === null || auditHead.seq >= seen.auditHead.seq)) seen.auditHead = auditHead;
    await saveSeenState(this.#paths.seen, seen, nowSeconds());

    try {
      await this.#ensureToken();
      await this.#client.submitApproval(requestId, approval);
    } catch (error) {
      if (error instanceof BrokerClientError && (error.code === 'request_settled' || error.code === 'request_expired')) {
        this.#frontEnd.report({ request: requestId, result: 'settled', code: error.code, message: error.message });
        return;
      }
      throw error;
    }
    const paths = verified.request.body.paths;
    this.#frontEnd.report(decision === 'approve'
      ? { request: requestId, result: 'approved', paths, leaseSeconds }
      : { request: requestId, result: 'denied', paths });
  }

  /**
   * Handles pending requests, then keeps a WebSocket open and handles each
   * request as it is delivered, reconnecting after a dropped connection
   * until quit. Throws when the broker closes the connection because this
   * device was revoked.
   */
  async watch(): Promise<void> {
    while (!this.#stopping()) {
      await this.handlePending();
      await this.#ensureToken();
      const stream = await this.#client.connect();
      try {
        for await (const event of stream) {
          if (event.type === 'request') await this.handle(event.request, event.bundle);
          else if (event.type === 'settled') this.settled(event.request);
          else if (event.type === 'error') this.#frontEnd.show(`broker: ${event.message} (${event.code})`);
          if (this.#stopping()) break;
        }
      } finally {
        await stream.close();
      }
      const { code, reason } = await stream.closed;
      if (code === 4403) throw Object.assign(new Error(`the broker closed the connection: ${reason || 'certificate revoked'}`), { code: 'revoked' });
      if (!this.#stopping()) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** Marks a request settled elsewhere so a later delivery of it is not asked. */
  settled(requestId: string): void {
    this.#handled.add(requestId);
  }
}

function requestIdOf(bundle: unknown): string {
  const request = (bundle as { request?: { body?: { id?: unknown } } } | null)?.request;
  const id = request?.body?.id;
  return typeof id === 'string' ? id : '(unknown)';
}
