import http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { errorCode } from './broker-link.js';
import { DaemonError } from './errors.js';
import type { Progress } from './flow.js';
import { pinPeer, resolveCaller, type CallerIdentity } from './peer.js';
import type { DaemonService, SecretsResult } from './service.js';

/**
 * The daemon's socket API: HTTP/1.1 with JSON over the Unix socket
 * (docs/daemon-api.md). Transport checks run before any handler: requests
 * with an Origin or Referer header, or a Host other than `localhost` or
 * `stillvault`, are rejected, so a browser or a local proxy cannot relay a
 * web page's request. The caller is identified once per connection, in the
 * 'connection' handler, before any byte of a request is read, and bodies are
 * limited to MAX_BODY_BYTES while they are read, before parsing.
 */

export const MAX_BODY_BYTES = 64 * 1024;
export const ALLOWED_HOSTS: readonly string[] = ['localhost', 'stillvault'];
const LEASE_PATH = /^\/v1\/leases\/([A-Za-z0-9_-]{1,64})$/;

/** HTTP status for each error code the API returns outside a stream. */
const STATUS: Record<string, number> = {
  invalid_request: 400,
  caller_gone: 403,
  caller_unidentified: 403,
  caller_untrusted_exe: 403,
  caller_not_allowed: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  too_many_requests: 429,
};

export function createApiServer(service: DaemonService, logger: Logger, options: { hashExe: boolean }): http.Server {
  const callers = new WeakMap<Socket, Promise<CallerIdentity>>();
  const server = http.createServer({ requireHostHeader: false }, (request, response) => {
    handle(service, logger, callers, request, response).catch((error: unknown) => {
      logger.error({ event: 'api-error', err: error }, 'socket API handler failed');
      if (!response.headersSent) sendError(response, new DaemonError('invalid_request', 'internal error'), 500);
      else response.destroy();
    });
  });

  server.on('connection', function identifyOnConnect(socket: Socket) {
    // SO_PEERCRED and the pidfd are read synchronously here, while the peer
    // is certainly still connected; /proc is read right after.
    let identity: Promise<CallerIdentity>;
    try {
      identity = resolveCaller(pinPeer(socket), { hashExe: options.hashExe });
    } catch (error) {
      identity = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    // The failure is logged where a request awaits it, so a request rejected for its headers is not logged as caller_gone.
    identity.catch(() => undefined);
    callers.set(socket, identity);
  });
  return server;
}

async function handle(
  service: DaemonService,
  logger: Logger,
  callers: WeakMap<Socket, Promise<CallerIdentity>>,
  request: http.IncomingMessage,
  response: http.ServerResponse,
): Promise<void> {
  const refusal = checkTransport(request);
  if (refusal !== null) {
    logger.warn({ event: 'request-rejected', code: refusal.code, reason: refusal.message, method: request.method, path: request.url }, 'socket API request rejected');
    sendError(response, refusal);
    return;
  }

  let caller: CallerIdentity;
  try {
    const identity = callers.get(request.socket);
    if (identity === undefined) throw new DaemonError('caller_unidentified', 'the connection was not identified');
    caller = await identity;
  } catch (error) {
    logger.warn({ event: 'caller-unidentified', code: errorCode(error), message: (error as Error).message }, 'caller identification failed');
    sendError(response, error);
    return;
  }

  const path = new URL(request.url ?? '/', 'http://stillvault').pathname;
  const method = request.method ?? 'GET';
  if (path === '/v1/status' && method === 'GET') {
    sendJson(response, 200, service.status(caller));
  } else if (path === '/v1/secrets' && method === 'POST') {
    await handleSecrets(service, logger, caller, request, response);
  } else if (path === '/v1/leases' && method === 'GET') {
    sendJson(response, 200, { leases: service.listLeases(caller) });
  } else if (LEASE_PATH.test(path) && method === 'DELETE') {
    try {
      service.revokeLease(caller, LEASE_PATH.exec(path)?.[1] ?? '');
      sendJson(response, 200, { revoked: true });
    } catch (error) {
      sendError(response, error);
    }
  } else if (['/v1/status', '/v1/secrets', '/v1/leases'].includes(path) || LEASE_PATH.test(path)) {
    sendError(response, { code: 'method_not_allowed', message: `${method} is not allowed on ${path}` });
  } else {
    sendError(response, new DaemonError('not_found', `no endpoint ${path}`));
  }
}

/** Rejects browser-originated and oddly addressed requests. Returns the error, or null when the request may proceed. */
function checkTransport(request: http.IncomingMessage): DaemonError | null {
  if (request.headers.origin !== undefined || request.headers.referer !== undefined) {
    return new DaemonError('invalid_request', 'requests with an Origin or Referer header are rejected: the socket API is not for browsers');
  }
  const host = request.headers.host;
  if (host !== undefined && host !== '' && !ALLOWED_HOSTS.includes(host.toLowerCase())) {
    return new DaemonError('invalid_request', `Host ${JSON.stringify(host)} is rejected; use Host: localhost or Host: stillvault`);
  }
  return null;
}

async function handleSecrets(service: DaemonService, logger: Logger, caller: CallerIdentity, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
  let query;
  let endCall: () => void;
  try {
    const body = await readJsonBody(request);
    query = service.parseSecretsQuery(body);
    service.authorize(caller, query.paths);
    endCall = service.beginSecretsCall(caller);
  } catch (error) {
    if (errorCode(error) === 'caller_not_allowed') {
      logger.warn({ event: 'caller-not-allowed', uid: caller.uid, pid: caller.pid, exe: caller.exe, message: (error as Error).message }, 'local rules do not allow the caller');
    }
    sendError(response, error);
    return;
  }

  response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const emit = (event: Progress) => {
    if (!response.destroyed) response.write(`${JSON.stringify(event)}\n`);
  };
  const isConnected = () => !response.destroyed && !request.socket.destroyed;
  // A response closed before it finished means the caller left; its pending request is then cancelled.
  const callerLeft = new AbortController();
  response.once('close', () => { if (!response.writableFinished) callerLeft.abort(); });
  try {
    const result = await service.secrets(caller, query, emit, isConnected, callerLeft.signal);
    response.end(encodeResult(result));
  } catch (error) {
    response.end(`${JSON.stringify({ type: 'error', code: errorCode(error), message: messageOf(error) })}\n`);
  } finally {
    endCall();
  }
}

/**
 * Encodes the final result line. The values are base64 inside JSON text,
 * so they pass through JavaScript strings that cannot be wiped.
 */
function encodeResult(result: SecretsResult): Buffer {
  // NOTE: base64 and JSON produce immutable strings; the plaintext copies in them stay until garbage collection.
  const secrets: Record<string, string> = {};
  for (const [path, value] of result.values) secrets[path] = Buffer.from(value.expose()).toString('base64');
  return Buffer.from(`${JSON.stringify({ type: 'result', secrets, lease: result.lease })}\n`);
}

/** Reads the body up to MAX_BODY_BYTES, then parses it as JSON. Throws DaemonError. */
async function readJsonBody(request: http.IncomingMessage): Promise<unknown> {
  const declared = Number(request.headers['content-length'] ?? '0');
  if (declared > MAX_BODY_BYTES) {
    throw new DaemonError('payload_too_large', `the body is ${declared} bytes; the limit is ${MAX_BODY_BYTES}`);
  }
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    request.on('data', (chunk: Buffer) => {
      if (finished) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        finished = true;
        request.pause();
        reject(new DaemonError('payload_too_large', `the body exceeds the limit of ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    request.once('end', () => {
      if (!finished) resolve(Buffer.concat(chunks));
      finished = true;
    });
    request.once('error', (error) => {
      if (!finished) reject(error);
      finished = true;
    });
  });
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (cause) {
    throw new DaemonError('invalid_request', 'the body is not valid JSON', { cause });
  }
}

function sendJson(response: http.ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(`${JSON.stringify(value)}\n`);
}

function sendError(response: http.ServerResponse, error: unknown, status?: number): void {
  const code = errorCode(error);
  // An unread oversized body leaves the connection unusable, so it closes after the response.
  if (code === 'payload_too_large') response.setHeader('connection', 'close');
  sendJson(response, status ?? STATUS[code] ?? 500, { error: { code, message: messageOf(error) } });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String((error as { message?: unknown }).message ?? error);
}
