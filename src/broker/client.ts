import WebSocket from 'ws';
import type { LeaseView } from './leases.js';
import { SIGNATURE_CONTEXT } from '../protocol/contexts.js';
import { toBase64Url } from '../protocol/encoding.js';
import type { SigningPrivateKey } from '../protocol/keys.js';
import { signedMessage, type Signed } from '../protocol/signed.js';
import type {
  ApprovalBody, AuditHeadBody, ConsumerCertBody, DeviceCertBody, OrgBody, PolicyBody, RequestBody, RevocationBody, SecretBody,
} from '../protocol/types.js';
import type { AuditEntry } from './audit.js';

/**
 * A typed client for every broker endpoint (docs/broker-api.md). It returns
 * what the broker served, unverified: callers verify every signed object
 * against their pinned Org Identity key before acting on it.
 */

export type BrokerRole = 'admin' | 'device' | 'consumer';
export type RequestState = 'pending' | 'released' | 'denied' | 'expired' | 'undelivered' | 'cancelled' | 'refused';

/** A failed call: the broker's stable error code, or `network_error` / `invalid_response`. */
export class BrokerClientError extends Error {
  readonly code: string;
  readonly status: number;

  constructor(code: string, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BrokerClientError';
    this.code = code;
    this.status = status;
  }
}

export interface Enrollment {
  id: string;
  inviteId: string;
  kind: 'device' | 'consumer';
  name: string;
  platform: string;
  keys: Record<string, string>;
  state: 'pending' | 'done' | 'rejected';
  created: number;
  certificate: Signed<DeviceCertBody | ConsumerCertBody> | null;
}

export interface EnrollmentSubmission {
  inviteId: string;
  code: string;
  name: string;
  platform: string;
  keys: { signingKey: string; sealingKey: string } | { hostKey: string };
}

export interface InviteSpec {
  id: string;
  codeHash: string;
  kind: 'device' | 'consumer';
  name: string;
  expires: number;
}

/** The objects an approver needs to decide on a request. */
export interface RequestBundle {
  request: Signed<RequestBody>;
  policy: Signed<PolicyBody>;
  secrets: Signed<SecretBody>[];
  consumerCert: Signed<ConsumerCertBody>;
}

export interface RequestStatus {
  id: string;
  state: RequestState;
  eligible: number;
  delivered: number;
  settledBy: string | null;
  request: Signed<RequestBody>;
  approval: Signed<ApprovalBody> | null;
  secrets: Signed<SecretBody>[] | null;
  /** Codes of the eligible devices that refused the request, one per device. */
  refusals?: string[];
}

export type BrokerEvent =
  | { type: 'request'; request: string; bundle: RequestBundle }
  | { type: 'settled'; request: string; state: RequestState; settledBy: string | null }
  | { type: 'delivered'; request: string; delivered: number; eligible: number }
  | { type: 'result'; request: string; state: RequestState; reason?: string; codes?: string[]; approval?: Signed<ApprovalBody>; secrets?: Signed<SecretBody>[] }
  | { type: 'error'; code: string; message: string };

/** A live WebSocket session: events arrive in order, `ack` confirms one. */
export interface BrokerEventStream extends AsyncIterable<BrokerEvent> {
  /** Resolves the next event, or rejects when the connection closes first. */
  next(timeoutMs?: number): Promise<BrokerEvent>;
  ack(requestId: string): void;
  close(): Promise<void>;
  /** Close code and reason once closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
}

export class BrokerClient {
  readonly url: string;
  readonly org: string;
  #token: string | null = null;

  constructor(url: string, org: string) {
    this.url = url.replace(/\/+$/, '');
    this.org = org;
  }

  get token(): string | null {
    return this.#token;
  }

  /** Proves possession of `signingKey` with a challenge and keeps the bearer token for later calls. */
  async authenticate(role: BrokerRole, id: string, signingKey: SigningPrivateKey): Promise<{ expires: number }> {
    const { challenge, audience } = await this.#call<{ challenge: string; audience: string }>('POST', '/v1/auth/challenge', { org: this.org, role, id }, false);
    const message = signedMessage(SIGNATURE_CONTEXT.authChallenge, { org: this.org, role, id, challenge, audience });
    const sig = toBase64Url(await signingKey.sign(message));
    const { token, expires } = await this.#call<{ token: string; expires: number }>('POST', '/v1/auth/token', { org: this.org, role, id, challenge, sig }, false);
    this.#token = token;
    return { expires };
  }

  registerOrg(org: Signed<OrgBody>): Promise<{ org: string }> {
    return this.#call('POST', '/v1/orgs', { org }, false);
  }

  getOrg(): Promise<{ org: Signed<OrgBody>; brokerKey: string }> {
    return this.#call('GET', this.#orgPath(''));
  }

  createInvite(invite: InviteSpec): Promise<{ invite: string }> {
    return this.#call('POST', this.#orgPath('/invites'), invite);
  }

  submitEnrollment(submission: EnrollmentSubmission): Promise<{ enrollment: string; state: 'pending' }> {
    return this.#call('POST', this.#orgPath('/enrollments'), submission, false);
  }

  async pollEnrollment(id: string, code: string): Promise<Enrollment> {
    return (await this.#call<{ enrollment: Enrollment }>('POST', this.#orgPath(`/enrollments/${id}/poll`), { code }, false)).enrollment;
  }

  async listEnrollments(state?: Enrollment['state']): Promise<Enrollment[]> {
    const query = state === undefined ? '' : `?state=${state}`;
    return (await this.#call<{ enrollments: Enrollment[] }>('GET', this.#orgPath(`/enrollments${query}`))).enrollments;
  }

  /** Completes an enrollment with the certificate the admin signed. */
  uploadCertificate(enrollmentId: string, certificate: Signed<DeviceCertBody | ConsumerCertBody>): Promise<{ enrollment: string; state: 'done' }> {
    return this.#call('POST', this.#orgPath(`/enrollments/${enrollmentId}/certificate`), { certificate });
  }

  rejectEnrollment(enrollmentId: string): Promise<{ enrollment: string; state: 'rejected' }> {
    return this.#call('POST', this.#orgPath(`/enrollments/${enrollmentId}/reject`), {});
  }

  /** Stores a certificate without an enrollment (renewal, re-issue). */
  putCertificate(certificate: Signed<DeviceCertBody | ConsumerCertBody>): Promise<{ kind: string; id: string }> {
    return this.#call('POST', this.#orgPath('/certificates'), { certificate });
  }

  listCertificates(): Promise<{ devices: Signed<DeviceCertBody>[]; consumers: Signed<ConsumerCertBody>[] }> {
    return this.#call('GET', this.#orgPath('/certificates'));
  }

  putRevocation(revocation: Signed<RevocationBody>): Promise<{ revoked: string }> {
    return this.#call('POST', this.#orgPath('/revocations'), { revocation });
  }

  async listRevocations(): Promise<Signed<RevocationBody>[]> {
    return (await this.#call<{ revocations: Signed<RevocationBody>[] }>('GET', this.#orgPath('/revocations'))).revocations;
  }

  /** Lists leases that have not ended (admin only); revoked ones are marked. */
  async listLeases(): Promise<LeaseView[]> {
    return (await this.#call<{ leases: LeaseView[] }>('GET', this.#orgPath('/leases'))).leases;
  }

  putPolicy(policy: Signed<PolicyBody>): Promise<{ policy: string; version: number }> {
    return this.#call('PUT', this.#orgPath('/policies'), { policy });
  }

  async listPolicies(): Promise<Signed<PolicyBody>[]> {
    return (await this.#call<{ policies: Signed<PolicyBody>[] }>('GET', this.#orgPath('/policies'))).policies;
  }

  putSecret(secret: Signed<SecretBody>): Promise<{ path: string; version: number }> {
    return this.#call('PUT', this.#orgPath('/secrets'), { secret });
  }

  /** Returns the latest stored version of each path that exists. */
  async getSecrets(paths: string[]): Promise<Signed<SecretBody>[]> {
    const query = paths.map((path) => `path=${encodeURIComponent(path)}`).join('&');
    return (await this.#call<{ secrets: Signed<SecretBody>[] }>('GET', this.#orgPath(`/secrets?${query}`))).secrets;
  }

  submitRequest(request: Signed<RequestBody>): Promise<{ request: string; state: 'pending'; eligible: number }> {
    return this.#call('POST', this.#orgPath('/requests'), { request });
  }

  async getRequest(id: string): Promise<RequestStatus> {
    return (await this.#call<{ request: RequestStatus }>('GET', this.#orgPath(`/requests/${id}`))).request;
  }

  async listPendingRequests(): Promise<RequestBundle[]> {
    return (await this.#call<{ requests: RequestBundle[] }>('GET', this.#orgPath('/requests?state=pending'))).requests;
  }

  acknowledgeRequest(id: string): Promise<{ delivered: number }> {
    return this.#call('POST', this.#orgPath(`/requests/${id}/ack`), {});
  }

  submitApproval(requestId: string, approval: Signed<ApprovalBody>): Promise<{ request: string; state: RequestState }> {
    return this.#call('POST', this.#orgPath(`/requests/${requestId}/approvals`), { approval });
  }

  /** Ends a pending request this consumer sent (its caller left or its daemon stops). */
  cancelRequest(requestId: string): Promise<{ request: string; state: 'cancelled' }> {
    return this.#call('POST', this.#orgPath(`/requests/${requestId}/cancel`), {});
  }

  /** Tells the broker this device refused a request that failed verification, with the error code. */
  refuseRequest(requestId: string, code: string): Promise<{ request: string; state: RequestState }> {
    return this.#call('POST', this.#orgPath(`/requests/${requestId}/refuse`), { code });
  }

  auditEntries(after = 0, limit = 1000): Promise<{ entries: { entry: AuditEntry; hash: string }[]; head: Signed<AuditHeadBody> }> {
    return this.#call('GET', this.#orgPath(`/audit/entries?after=${after}&limit=${limit}`));
  }

  async auditHead(): Promise<Signed<AuditHeadBody>> {
    return (await this.#call<{ head: Signed<AuditHeadBody> }>('GET', this.#orgPath('/audit/head'))).head;
  }

  /** Opens the WebSocket, authenticates with the current token and resolves once the broker sends `ready`. */
  async connect(): Promise<BrokerEventStream> {
    const token = this.#requireToken();
    const socket = new WebSocket(this.url.replace(/^http/, 'ws') + '/v1/ws', { maxPayload: 4 * 1024 * 1024 });
    const stream = new EventQueue(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => { socket.send(JSON.stringify({ type: 'auth', token })); });
      socket.once('error', reject);
      stream.onReady = resolve;
      void stream.closed.then(({ code, reason }) => { reject(new BrokerClientError('connection_closed', code, `WebSocket closed (${code} ${reason})`)); });
    });
    return stream;
  }

  #orgPath(suffix: string): string {
    return `/v1/orgs/${this.org}${suffix}`;
  }

  #requireToken(): string {
    if (this.#token === null) throw new BrokerClientError('unauthorized', 0, 'call authenticate() first');
    return this.#token;
  }

  async #call<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, authenticated = true): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (authenticated) headers.authorization = `Bearer ${this.#requireToken()}`;
    let response: Response;
    try {
      response = await fetch(this.url + path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    } catch (cause) {
      throw new BrokerClientError('network_error', 0, `${method} ${path} failed: broker unreachable`, { cause });
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw new BrokerClientError('invalid_response', response.status, `${method} ${path} returned ${response.status} without JSON`, { cause });
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const code = typeof error?.code === 'string' ? error.code : 'invalid_response';
      const message = typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`;
      throw new BrokerClientError(code, response.status, message);
    }
    return parsed as T;
  }
}

/** Buffers WebSocket events until a reader takes them. */
class EventQueue implements BrokerEventStream {
  readonly #socket: WebSocket;
  readonly #buffer: BrokerEvent[] = [];
  #waiters: { resolve: (event: BrokerEvent) => void; reject: (error: Error) => void }[] = [];
  #closeInfo: { code: number; reason: string } | null = null;
  onReady: (() => void) | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(socket: WebSocket) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.#closeInfo = { code, reason: reason.toString('utf8') };
        for (const waiter of this.#waiters) waiter.reject(this.#closedError());
        this.#waiters = [];
        resolve(this.#closeInfo);
      });
    });
    socket.on('error', () => undefined);
    socket.on('message', (data: WebSocket.RawData) => { this.#receive(data); });
  }

  #closedError(): BrokerClientError {
    const info = this.#closeInfo ?? { code: 0, reason: '' };
    return new BrokerClientError('connection_closed', info.code, `WebSocket closed (${info.code} ${info.reason})`);
  }

  #receive(data: WebSocket.RawData): void {
    let message: { type?: unknown };
    try {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
      message = JSON.parse(text) as { type?: unknown };
    } catch {
      return;
    }
    if (message.type === 'ready') {
      this.onReady?.();
      return;
    }
    if (message.type === 'pong') return;
    const event = message as BrokerEvent;
    const waiter = this.#waiters.shift();
    if (waiter === undefined) this.#buffer.push(event);
    else waiter.resolve(event);
  }

  next(timeoutMs = 30_000): Promise<BrokerEvent> {
    const buffered = this.#buffer.shift();
    if (buffered !== undefined) return Promise.resolve(buffered);
    if (this.#closeInfo !== null) return Promise.reject(this.#closedError());
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (event: BrokerEvent) => { clearTimeout(timer); resolve(event); },
        reject: (error: Error) => { clearTimeout(timer); reject(error); },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((item) => item !== waiter);
        reject(new BrokerClientError('timeout', 0, `no event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  ack(requestId: string): void {
    this.send({ type: 'ack', request: requestId });
  }

  /** Sends a raw message; exposed for tests and for pings. */
  send(message: unknown): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  async close(): Promise<void> {
    if (this.#closeInfo === null) {
      this.#socket.close(1000, 'client closed');
      await this.closed;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<BrokerEvent> {
    for (;;) {
      try {
        yield await this.next(2 ** 31 - 1);
      } catch (error) {
        if (error instanceof BrokerClientError && error.code === 'connection_closed') return;
        throw error;
      }
    }
  }
}
