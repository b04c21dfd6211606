import type { IncomingMessage, ServerResponse } from 'node:http';
import { authenticateHttp, issueChallenge, issueToken } from './auth.js';
import type { BrokerContext, Principal, Role } from './context.js';
import { listLeases } from './leases.js';
import { BrokerError, forbidden, toBrokerError } from './errors.js';
import {
  auditEntries, completeEnrollment, createInvite, getOrg, listCertificates, listEnrollments, listRevocations, pollEnrollment,
  putCertificate, putPolicy, putRevocation, putSecret, registerOrg, rejectEnrollment, signedAuditHead, submitEnrollment,
} from './org-objects.js';
import { deletePushSubscription, putPushSubscription } from './push.js';
import { acknowledgeDelivery, cancelRequest, createRequest, getRequest, listPendingRequests, refuseRequest, submitApproval } from './requests.js';
import { isId } from './shape.js';
import { latestPolicies, latestSecrets } from './store.js';

/** The HTTP side of the broker: body limits, a route table with named handlers, and JSON errors. */

interface HandlerInput {
  ctx: BrokerContext;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  principal: Principal | null;
  remote: string;
}

type Reply = { status: number; body: unknown } | { status: number; text: string; contentType: string };
type Handler = (input: HandlerInput) => Promise<Reply>;

interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  pattern: RegExp;
  /** The callers allowed: anyone without a token, any principal of the path's org, or only the listed roles. */
  auth: 'none' | 'member' | Role[];
  handler: Handler;
}

const ok = (body: unknown, status = 200): Reply => ({ status, body });

function route(method: Route['method'], path: string, auth: Route['auth'], handler: Handler): Route {
  const pattern = new RegExp('^' + path.replace(/:(\w+)/g, '(?<$1>[^/]+)') + '$');
  return { method, pattern, auth, handler };
}

/** Per-address sliding window for unauthenticated enrollment submissions. */
const enrollmentAttempts = new Map<string, number[]>();
const ENROLLMENTS_PER_MINUTE = 10;

function limitEnrollmentRate(remote: string): void {
  const now = Date.now();
  const recent = (enrollmentAttempts.get(remote) ?? []).filter((time) => time > now - 60_000);
  recent.push(now);
  enrollmentAttempts.set(remote, recent);
  if (recent.length > ENROLLMENTS_PER_MINUTE) {
    throw new BrokerError(429, 'rate_limited', `more than ${ENROLLMENTS_PER_MINUTE} enrollment attempts per minute from this address`);
  }
}

function memberOf(input: HandlerInput): Principal {
  if (input.principal === null) throw new BrokerError(401, 'unauthorized', 'authentication required');
  return input.principal;
}

function intParam(query: URLSearchParams, name: string, fallback: number): number {
  const text = query.get(name);
  if (text === null) return fallback;
  if (!/^\d{1,15}$/.test(text)) throw new BrokerError(400, 'invalid_request', `${name} must be a non-negative integer`);
  return Number(text);
}

const ROUTES: Route[] = [
  route('GET', '/healthz', 'none', function healthz() { return Promise.resolve(ok({ ok: true })); }),
  route('GET', '/metrics', 'none', async function metrics({ ctx }) {
    const pending = await ctx.db.get<{ count: number | string }>("SELECT COUNT(*) AS count FROM requests WHERE state = 'pending'");
    const text = ctx.metrics.render(Number(pending?.count ?? 0), ctx.hub.connectedByRole());
    return { status: 200, text, contentType: 'text/plain; version=0.0.4; charset=utf-8' };
  }),
  route('POST', '/v1/auth/challenge', 'none', async function challenge({ ctx, body }) { return ok(await issueChallenge(ctx, body)); }),
  route('POST', '/v1/auth/token', 'none', async function token({ ctx, body }) { return ok(await issueToken(ctx, body)); }),
  route('POST', '/v1/orgs', 'none', async function register({ ctx, body }) {
    const result = await registerOrg(ctx, body);
    return ok(result.body, result.status);
  }),
  route('GET', '/v1/orgs/:org', 'member', async function org({ ctx, params }) { return ok(await getOrg(ctx, params.org ?? '')); }),
  route('POST', '/v1/orgs/:org/invites', ['admin'], async function invite(input) {
    return ok(await createInvite(input.ctx, memberOf(input), input.body), 201);
  }),
  route('POST', '/v1/orgs/:org/enrollments', 'none', async function enroll({ ctx, params, body, remote }) {
    limitEnrollmentRate(remote);
    return ok(await submitEnrollment(ctx, params.org ?? '', body), 201);
  }),
  route('GET', '/v1/orgs/:org/enrollments', ['admin'], async function enrollments({ ctx, params, query }) {
    return ok(await listEnrollments(ctx, params.org ?? '', query.get('state')));
  }),
  route('POST', '/v1/orgs/:org/enrollments/:id/poll', 'none', async function poll({ ctx, params, body, remote }) {
    limitEnrollmentRate(remote);
    return ok(await pollEnrollment(ctx, params.org ?? '', params.id ?? '', body));
  }),
  route('POST', '/v1/orgs/:org/enrollments/:id/certificate', ['admin'], async function certify(input) {
    return ok(await completeEnrollment(input.ctx, memberOf(input), input.params.id ?? '', input.body));
  }),
  route('POST', '/v1/orgs/:org/enrollments/:id/reject', ['admin'], async function reject(input) {
    return ok(await rejectEnrollment(input.ctx, memberOf(input), input.params.id ?? ''));
  }),
  route('POST', '/v1/orgs/:org/certificates', ['admin'], async function certificate(input) {
    return ok(await putCertificate(input.ctx, memberOf(input), input.body), 201);
  }),
  route('GET', '/v1/orgs/:org/certificates', 'member', async function certificates({ ctx, params }) {
    return ok(await listCertificates(ctx, params.org ?? ''));
  }),
  route('POST', '/v1/orgs/:org/revocations', ['admin'], async function revoke(input) {
    return ok(await putRevocation(input.ctx, memberOf(input), input.body), 201);
  }),
  route('GET', '/v1/orgs/:org/revocations', 'member', async function revocations({ ctx, params }) {
    return ok(await listRevocations(ctx, params.org ?? ''));
  }),
  route('GET', '/v1/orgs/:org/leases', ['admin'], async function leases({ ctx, params }) {
    return ok(await listLeases(ctx, params.org ?? ''));
  }),
  route('PUT', '/v1/orgs/:org/policies', ['admin'], async function policy(input) {
    return ok(await putPolicy(input.ctx, memberOf(input), input.body));
  }),
  route('GET', '/v1/orgs/:org/policies', 'member', async function policies({ ctx, params }) {
    return ok({ policies: await latestPolicies(ctx.db, params.org ?? '') });
  }),
  route('PUT', '/v1/orgs/:org/secrets', ['admin'], async function secret(input) {
    return ok(await putSecret(input.ctx, memberOf(input), input.body));
  }),
  route('GET', '/v1/orgs/:org/secrets', 'member', async function secrets({ ctx, params, query }) {
    const paths = query.getAll('path');
    if (paths.length === 0 || paths.length > 64) throw new BrokerError(400, 'invalid_request', 'give 1 to 64 path parameters');
    return ok({ secrets: await latestSecrets(ctx.db, params.org ?? '', paths) });
  }),
  route('POST', '/v1/orgs/:org/requests', ['consumer'], async function request(input) {
    return ok(await createRequest(input.ctx, memberOf(input), input.body), 201);
  }),
  route('GET', '/v1/orgs/:org/requests', ['device'], async function pending(input) {
    if ((input.query.get('state') ?? 'pending') !== 'pending') throw new BrokerError(400, 'invalid_request', 'only state=pending is supported');
    return ok(await listPendingRequests(input.ctx, memberOf(input)));
  }),
  route('GET', '/v1/orgs/:org/requests/:id', 'member', async function requestStatus(input) {
    return ok(await getRequest(input.ctx, memberOf(input), input.params.id ?? ''));
  }),
  route('POST', '/v1/orgs/:org/requests/:id/ack', ['device'], async function ack(input) {
    return ok(await acknowledgeDelivery(input.ctx, memberOf(input), input.params.id ?? ''));
  }),
  route('POST', '/v1/orgs/:org/requests/:id/approvals', ['device'], async function approval(input) {
    return ok(await submitApproval(input.ctx, memberOf(input), input.params.id ?? '', input.body));
  }),
  route('POST', '/v1/orgs/:org/requests/:id/cancel', ['consumer'], async function cancel(input) {
    return ok(await cancelRequest(input.ctx, memberOf(input), input.params.id ?? ''));
  }),
  route('POST', '/v1/orgs/:org/requests/:id/refuse', ['device'], async function refuse(input) {
    return ok(await refuseRequest(input.ctx, memberOf(input), input.params.id ?? '', input.body));
  }),
  route('GET', '/v1/push/vapid-public-key', 'none', function vapidPublicKey({ ctx }) {
    if (ctx.push === undefined) throw new BrokerError(404, 'push_unavailable', 'this broker does not send Web Push notifications');
    return Promise.resolve(ok({ publicKey: ctx.push.publicKey }));
  }),
  route('PUT', '/v1/orgs/:org/push-subscription', ['device'], async function subscribe(input) {
    return ok(await putPushSubscription(input.ctx, memberOf(input), input.body));
  }),
  route('DELETE', '/v1/orgs/:org/push-subscription', ['device'], async function unsubscribe(input) {
    return ok(await deletePushSubscription(input.ctx, memberOf(input)));
  }),
  route('GET', '/v1/orgs/:org/audit/entries', 'member', async function entries({ ctx, params, query }) {
    return ok(await auditEntries(ctx, params.org ?? '', intParam(query, 'after', 0), intParam(query, 'limit', 1000)));
  }),
  route('GET', '/v1/orgs/:org/audit/head', 'member', async function head({ ctx, params }) {
    return ok({ head: await signedAuditHead(ctx, params.org ?? '') });
  }),
];

/** Reads the body up to `limit` bytes; a longer body is rejected before any parsing. */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length'] ?? '0');
    if (declared > limit) {
      reject(new BrokerError(413, 'payload_too_large', `request body exceeds ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        reject(new BrokerError(413, 'payload_too_large', `request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => { resolve(Buffer.concat(chunks)); });
    request.on('error', reject);
  });
}

function parseJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return null;
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new BrokerError(400, 'invalid_json', 'request body is not valid JSON');
  }
}

function send(response: ServerResponse, reply: Reply): void {
  if ('text' in reply) {
    response.writeHead(reply.status, { 'content-type': reply.contentType });
    response.end(reply.text);
    return;
  }
  const text = JSON.stringify(reply.body);
  response.writeHead(reply.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(text);
}

async function dispatch(ctx: BrokerContext, request: IncomingMessage, url: URL): Promise<Reply> {
  const candidates = ROUTES.map((candidate) => ({ candidate, match: candidate.pattern.exec(url.pathname) })).filter((item) => item.match !== null);
  if (candidates.length === 0) throw new BrokerError(404, 'not_found', `no endpoint at ${url.pathname}`);
  const found = candidates.find((item) => item.candidate.method === request.method);
  if (found === undefined) throw new BrokerError(405, 'method_not_allowed', `${String(request.method)} is not allowed on ${url.pathname}`);
  const params = { ...found.match?.groups };
  for (const [name, value] of Object.entries(params)) {
    if (!isId(value) && !(name === 'org' && /^[A-Za-z0-9_-]{43}$/.test(value))) {
      throw new BrokerError(400, 'invalid_request', `path parameter ${name} is malformed`);
    }
  }

  const bodyBytes = request.method === 'GET' || request.method === 'DELETE' ? Buffer.alloc(0) : await readBody(request, ctx.limits.maxBodyBytes);
  const body = parseJson(bodyBytes);
  let principal: Principal | null = null;
  if (found.candidate.auth !== 'none') {
    principal = await authenticateHttp(ctx, request);
    if (principal.org !== params.org) throw forbidden('token belongs to another org');
    if (Array.isArray(found.candidate.auth) && !found.candidate.auth.includes(principal.role)) {
      throw forbidden(`${principal.role} may not call ${String(request.method)} ${url.pathname}`);
    }
  }
  return found.candidate.handler({ ctx, params, query: url.searchParams, body, principal, remote: request.socket.remoteAddress ?? 'unknown' });
}

/**
 * Answers CORS for allowed origins only: it adds the allow headers when the
 * Origin header is listed, and returns true after answering a preflight.
 * Tokens travel in the authorization header, never in cookies, so no
 * credentials mode is allowed.
 */
function handleCors(allowedOrigins: readonly string[], request: IncomingMessage, response: ServerResponse): boolean {
  const origin = request.headers.origin;
  if (origin === undefined || !allowedOrigins.includes(origin)) return false;
  response.setHeader('access-control-allow-origin', origin);
  response.setHeader('vary', 'origin');
  if (request.method !== 'OPTIONS') return false;
  response.writeHead(204, {
    'access-control-allow-methods': 'GET, POST, PUT, DELETE',
    'access-control-allow-headers': 'authorization, content-type, accept',
    'access-control-max-age': '600',
  });
  response.end();
  return true;
}

/** Handles one HTTP request; every failure becomes a JSON error body and never escapes. */
export function createRequestListener(ctx: BrokerContext, allowedOrigins: readonly string[] = []): (request: IncomingMessage, response: ServerResponse) => void {
  return function handleHttpRequest(request, response) {
    ctx.metrics.httpRequests++;
    if (handleCors(allowedOrigins, request, response)) return;
    const url = new URL(request.url ?? '/', 'http://broker.invalid');
    dispatch(ctx, request, url).then((reply) => { send(response, reply); }, (error: unknown) => {
      const failure = toBrokerError(error);
      ctx.metrics.countError(failure.code);
      const log = { event: 'http-error', method: request.method, path: url.pathname, code: failure.code, status: failure.status };
      if (failure.status >= 500) ctx.logger.error({ ...log, err: failure.cause }, 'request failed');
      else ctx.logger.info(log, failure.message);
      if (failure.status === 413) response.setHeader('connection', 'close');
      send(response, { status: failure.status, body: { error: { code: failure.code, message: failure.message } } });
    });
  };
}
