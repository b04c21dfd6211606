import {
  approveRequest, denyRequest, verifyDeviceCert, verifyRevocation,
  type DeviceCertBody, type OrgTrust, type RevocationBody, type SigningPrivateKey, type Verified,
} from '../../protocol/index.js';
import { BrokerClient, type BrokerEvent, type RequestBundle } from '../../broker/client.js';
import { ApproverError } from './errors.js';
import { deriveDeviceKeys, wipeDeviceKeys, type DeviceKeys } from './keys.js';
import { LiveConnection } from './live.js';
import { saveState, type ApproverState } from './state.js';
import { recordSeenVersions, verifyBundle, type VerifiedBundle } from '../../approver/verify.js';
import { refusalCode } from '../../approver/errors.js';
import { evaluatePrf } from './webauthn.js';

/**
 * One unlocked session. Unlocking asks for the biometric once, derives the
 * device keys, keeps only the signing key (it authenticates to the broker and
 * signs denials) and wipes the sealing key at once. Every approval asks for
 * the biometric again and derives both keys for that one approval. The
 * signing key is wiped when the session locks: after IDLE_LOCK_MS without
 * input, when the page is hidden for HIDDEN_LOCK_MS, or on request.
 */

export const IDLE_LOCK_MS = 5 * 60_000;
const HIDDEN_LOCK_MS = 60_000;

export interface PendingRequest {
  id: string;
  bundle: RequestBundle;
  verified: VerifiedBundle | null;
  /** The reason verification failed; a request with one cannot be approved. */
  failure: unknown;
}

export interface SessionEvents {
  changed(): void;
  settled(id: string, note: string): void;
  locked(reason: string): void;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Asks for the biometric and derives both keys, checking they are the enrolled ones. */
async function unlockKeys(state: ApproverState): Promise<DeviceKeys> {
  const keys = await deriveDeviceKeys(await evaluatePrf(state.credentialId));
  if (keys.signing.publicKey.toBase64Url() !== state.signingKey || keys.sealing.publicKey.toBase64Url() !== state.sealingKey) {
    wipeDeviceKeys(keys);
    throw new ApproverError('wrong_passkey', 'This passkey derives other keys than the ones enrolled. Use the passkey you enrolled with.');
  }
  return keys;
}

export class Session {
  readonly state: ApproverState;
  readonly trust: OrgTrust;
  readonly deviceCert: Verified<DeviceCertBody>;
  readonly client: BrokerClient;
  readonly requests = new Map<string, PendingRequest>();
  /** Device id to name, from verified device certificates. */
  readonly names = new Map<string, string>();
  #signingKey: SigningPrivateKey | null;
  #revocations: Verified<RevocationBody>[] = [];
  #live: LiveConnection | null = null;
  #events: SessionEvents;
  #idleTimer = 0;
  #hiddenTimer = 0;
  #refreshTimer = 0;
  readonly #onActivity = (): void => { this.#armIdleTimer(); };
  readonly #onVisibility = (): void => {
    window.clearTimeout(this.#hiddenTimer);
    if (document.visibilityState === 'hidden') this.#hiddenTimer = window.setTimeout(() => { this.lock('the app was in the background'); }, HIDDEN_LOCK_MS);
  };

  private constructor(state: ApproverState, trust: OrgTrust, deviceCert: Verified<DeviceCertBody>, signingKey: SigningPrivateKey, events: SessionEvents) {
    this.state = state;
    this.trust = trust;
    this.deviceCert = deviceCert;
    this.client = new BrokerClient(state.broker, state.org);
    this.#signingKey = signingKey;
    this.#events = events;
  }

  /** Unlocks with the biometric, authenticates to the broker and starts the live list. */
  static async unlock(state: ApproverState, trust: OrgTrust, events: SessionEvents): Promise<Session> {
    if (state.certificate === null) throw new ApproverError('not_enrolled', 'This device is not enrolled yet.');
    const deviceCert = await verifyDeviceCert(state.certificate, trust, nowSeconds());
    const keys = await unlockKeys(state);
    keys.sealing.wipe();
    const session = new Session(state, trust, deviceCert, keys.signing, events);
    try {
      await session.#start();
    } catch (error) {
      session.lock('unlock failed');
      throw error;
    }
    return session;
  }

  get locked(): boolean {
    return this.#signingKey === null;
  }

  async #authenticate(): Promise<void> {
    if (this.#signingKey === null) throw new ApproverError('not_enrolled', 'The session is locked.');
    const { expires } = await this.client.authenticate('device', this.deviceCert.body.device, this.#signingKey);
    const refreshIn = Math.max(30, expires - nowSeconds() - 60) * 1000;
    window.clearTimeout(this.#refreshTimer);
    this.#refreshTimer = window.setTimeout(() => { void this.#reconnect(); }, refreshIn);
  }

  async #start(): Promise<void> {
    await this.#authenticate();
    const now = nowSeconds();
    for (const revocation of await this.client.listRevocations()) {
      this.#revocations.push(await verifyRevocation(revocation, this.trust));
    }
    const certificates = await this.client.listCertificates();
    for (const cert of certificates.devices) {
      try {
        const verified = await verifyDeviceCert(cert, this.trust, now, this.#revocations);
        this.names.set(verified.body.device, verified.body.name);
      } catch {
        // A device whose certificate does not verify is shown by id only.
      }
    }
    for (const bundle of await this.client.listPendingRequests()) await this.#receive(bundle);
    await this.#connect();
    for (const type of ['pointerdown', 'keydown', 'touchstart'] as const) window.addEventListener(type, this.#onActivity, { passive: true });
    document.addEventListener('visibilitychange', this.#onVisibility);
    this.#armIdleTimer();
  }

  async #connect(): Promise<void> {
    const token = this.client.token;
    if (token === null) throw new ApproverError('not_enrolled', 'not authenticated');
    const live = new LiveConnection(this.state.broker, token, (event) => { void this.#handle(event); });
    this.#live = live;
    await live.ready;
    void live.closed.then(() => {
      if (this.#live === live && !this.locked) window.setTimeout(() => { void this.#reconnect(); }, 2000);
    });
  }

  async #reconnect(): Promise<void> {
    if (this.locked) return;
    const old = this.#live;
    this.#live = null;
    old?.close();
    try {
      await this.#authenticate();
      await this.#connect();
    } catch {
      window.setTimeout(() => { void this.#reconnect(); }, 5000);
    }
  }

  async #handle(event: BrokerEvent): Promise<void> {
    if (event.type === 'request') {
      await this.#receive(event.bundle);
    } else if (event.type === 'settled') {
      const pending = this.requests.get(event.request);
      if (pending === undefined) return;
      this.requests.delete(event.request);
      if (!this.state.decided.includes(event.request)) {
        const by = event.settledBy === null ? '' : ` by ${this.names.get(event.settledBy) ?? `device ${event.settledBy}`}`;
        const what = pending.verified?.request.body.paths.join(', ') ?? event.request;
        const note = event.state === 'cancelled' ? ' (the agent stopped waiting)' : '';
        this.#events.settled(event.request, `The request for ${what} was ${event.state}${by}${note}.`);
      }
      this.#events.changed();
    }
  }

  /** Verifies and lists a delivered request, and acknowledges its delivery at once (even when it fails verification). */
  async #receive(bundle: RequestBundle): Promise<void> {
    const id = typeof bundle.request.body.id === 'string' ? bundle.request.body.id : '';
    if (id === '' || this.requests.has(id)) return;
    const pending: PendingRequest = { id, bundle, verified: null, failure: null };
    try {
      pending.verified = await this.#verify(bundle);
    } catch (error) {
      pending.failure = error;
    }
    this.requests.set(id, pending);
    if (this.#live !== null) this.#live.ack(id);
    else void this.client.acknowledgeRequest(id).catch(() => undefined);
    // Best effort, like the acknowledgement: the broker then stops listing the request for this device and tells the agent.
    if (pending.failure !== null) void this.client.refuseRequest(id, refusalCode(pending.failure)).catch(() => undefined);
    this.#events.changed();
  }

  #verify(bundle: RequestBundle): Promise<VerifiedBundle> {
    const seen = {
      policyVersions: this.state.policyVersions,
      secretVersions: this.state.secretVersions,
      requests: Object.fromEntries(this.state.decided.map((id) => [id, true])),
    };
    return verifyBundle(bundle, { trust: this.trust, device: this.deviceCert, seen, revocations: this.#revocations, now: nowSeconds() });
  }

  #remember(verified: VerifiedBundle): void {
    this.state.decided.push(verified.request.body.id);
    recordSeenVersions(this.state, verified);
    saveState(this.state);
  }

  /**
   * Approves with a fresh biometric: re-verifies the bundle now (expiry,
   * decided set, rollback), derives both keys, re-seals each DEK to the
   * request's ephemeral key, signs, wipes the keys and sends the approval.
   */
  async approve(id: string): Promise<VerifiedBundle> {
    const pending = this.requests.get(id);
    if (pending === undefined) throw new ApproverError('already_decided', 'This request is no longer pending.');
    const verified = await this.#verify(pending.bundle);
    const keys = await unlockKeys(this.state);
    let approval;
    try {
      const request = verified.request.body;
      approval = await approveRequest({
        deviceKey: keys.signing, sealingKey: keys.sealing, deviceCert: this.deviceCert, request: verified.request, secrets: verified.secrets,
        leaseSeconds: Math.min(request.leaseSeconds, verified.policy.body.maxLeaseSeconds), created: nowSeconds(), auditHead: null,
      });
    } finally {
      wipeDeviceKeys(keys);
    }
    this.#remember(verified);
    await this.client.submitApproval(id, approval);
    this.requests.delete(id);
    this.#events.changed();
    return verified;
  }

  /** Denies with the session's signing key: one tap, no biometric, because a denial releases nothing. */
  async deny(id: string): Promise<VerifiedBundle> {
    const pending = this.requests.get(id);
    const signingKey = this.#signingKey;
    if (pending === undefined) throw new ApproverError('already_decided', 'This request is no longer pending.');
    if (signingKey === null) throw new ApproverError('not_enrolled', 'The session is locked; unlock to deny.');
    const verified = await this.#verify(pending.bundle);
    const denial = await denyRequest({ deviceKey: signingKey, device: this.deviceCert.body.device, request: verified.request, created: nowSeconds(), auditHead: null });
    this.#remember(verified);
    await this.client.submitApproval(id, denial);
    this.requests.delete(id);
    this.#events.changed();
    return verified;
  }

  #armIdleTimer(): void {
    window.clearTimeout(this.#idleTimer);
    this.#idleTimer = window.setTimeout(() => { this.lock('no activity for 5 minutes'); }, IDLE_LOCK_MS);
  }

  /** Wipes the signing key, closes the connection and forgets the pending list. */
  lock(reason: string): void {
    if (this.#signingKey === null) return;
    this.#signingKey.wipe();
    this.#signingKey = null;
    window.clearTimeout(this.#idleTimer);
    window.clearTimeout(this.#hiddenTimer);
    window.clearTimeout(this.#refreshTimer);
    for (const type of ['pointerdown', 'keydown', 'touchstart'] as const) window.removeEventListener(type, this.#onActivity);
    document.removeEventListener('visibilitychange', this.#onVisibility);
    const live = this.#live;
    this.#live = null;
    live?.close();
    this.requests.clear();
    this.#events.locked(reason);
  }
}
