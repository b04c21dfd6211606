import http from 'node:http';
import { createInterface } from 'node:readline';
import { formatLease, terminalSafe } from '../approver/display.js';
import { defaultSocketPath } from '../daemon/socket.js';
import type { Progress } from '../daemon/flow.js';
import type { CliIo } from './command.js';
import { CliError } from './errors.js';

/**
 * The CLI side of the daemon's socket API (docs/daemon-api.md): HTTP/1.1
 * over the Unix socket. `requestSecrets` makes one POST /v1/secrets call,
 * reports progress lines as they arrive and returns the values as Buffers.
 */

/** Exit codes of get, run and inject for failures that come from the daemon. */
export const EXIT_FAILURE = 1;
export const EXIT_DENIED = 3;
export const EXIT_NOT_DECIDED = 4;
export const EXIT_DAEMON_UNREACHABLE = 5;

/** A progress line of POST /v1/secrets; the type import costs nothing at run time. */
export type DaemonProgress = Progress;

export interface SecretsRequest {
  paths: string[];
  reason: string;
  leaseSeconds?: number;
}

/** Returns the socket path: --socket when given, else $STILLVAULT_SOCKET, else the daemon's default. */
export function daemonSocketPath(env: NodeJS.ProcessEnv, explicit?: string): string {
  if (explicit !== undefined && explicit !== '') return explicit;
  const fromEnv = env.STILLVAULT_SOCKET;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return defaultSocketPath({ env });
}

/** Maps a daemon error code to the CLI exit code. */
export function exitCodeFor(code: string): number {
  switch (code) {
    case 'request_denied':
    case 'request_refused':
      return EXIT_DENIED;
    case 'request_expired':
    case 'request_undelivered':
    case 'request_cancelled':
      return EXIT_NOT_DECIDED;
    case 'daemon_unreachable':
      return EXIT_DAEMON_UNREACHABLE;
    default:
      return EXIT_FAILURE;
  }
}

/**
 * Asks the daemon for `paths` in one call. Resolves with one Buffer per
 * path, which the caller wipes when done. Throws CliError with the daemon's
 * code and the matching exit code.
 */
export async function requestSecrets(socketPath: string, query: SecretsRequest, onProgress: (event: DaemonProgress) => void): Promise<Map<string, Buffer>> {
  const body = JSON.stringify(query);
  const response = await send(socketPath, 'POST', '/v1/secrets', body);
  if (response.statusCode !== 200) throw await errorFromResponse(response);

  const lines = createInterface({ input: response, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line === '') continue;
    const event = parseLine(line);
    if (event.type === 'result') return decodeSecrets(event.secrets, query.paths);
    if (event.type === 'error') throw daemonError(String(event.code), String(event.message));
    onProgress(event as DaemonProgress);
  }
  throw daemonError('daemon_unreachable', 'the daemon closed the connection before the request ended');
}

/** Sends one request and resolves with the response; connection failures become 'daemon_unreachable'. */
export function send(socketPath: string, method: string, path: string, body?: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { host: 'stillvault' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const request = http.request({ socketPath, method, path, headers, agent: false }, resolve);
    request.once('error', (error: NodeJS.ErrnoException) => {
      reject(new CliError('daemon_unreachable', `cannot reach the daemon at ${socketPath} (${error.code ?? error.message})`, {
        hint: 'start it with `stillvault daemon`, or point to its socket with --socket or STILLVAULT_SOCKET',
        exitCode: EXIT_DAEMON_UNREACHABLE,
        cause: error,
      }));
    });
    request.end(body);
  });
}

/** Prints a progress event on stderr in words. */
export function printProgress(io: CliIo, event: DaemonProgress): void {
  const text = describeProgress(event);
  if (text !== null) io.stderr.write(`stillvault: ${text}\n`);
}

function describeProgress(event: DaemonProgress): string | null {
  switch (event.type) {
    case 'requested':
      return `request ${event.request} sent to ${event.eligible} approver${event.eligible === 1 ? '' : 's'}; waiting for a decision`;
    case 'delivered':
      return `delivered to ${event.delivered} of ${event.eligible} approver${event.eligible === 1 ? '' : 's'}`;
    case 'approved': {
      const { leaseSeconds, askedLeaseSeconds } = event;
      return leaseSeconds < askedLeaseSeconds
        ? `approved by ${terminalSafe(event.by)}, lease ${formatLease(leaseSeconds)} (asked ${formatLease(askedLeaseSeconds)})`
        : `approved by ${terminalSafe(event.by)}`;
    }
    case 'denied':
      return event.by === null ? 'denied' : `denied by ${terminalSafe(event.by)}`;
    case 'expired':
      return 'no approver decided before the request expired';
    case 'undelivered':
      return 'no approver received the request';
    case 'refused':
      return `refused by every approver (${event.codes.map(terminalSafe).join(', ')}): the request failed verification on their devices`;
    default:
      return null;
  }
}

/** Builds the CliError for a failure the daemon reported. The message ends with the stable code, so scripts can match on it. */
function daemonError(code: string, message: string): CliError {
  return new CliError(code, `${message} (${code})`, { exitCode: exitCodeFor(code), hint: hintFor(code) });
}

function hintFor(code: string): string | undefined {
  switch (code) {
    case 'caller_not_allowed':
      return 'the daemon\'s local rules (daemon/rules.json) do not allow this user or program to ask for that path';
    case 'request_undelivered':
      return 'no approver device was online; ask an approver to open the app, then try again';
    case 'broker_unavailable':
      return 'the daemon cannot reach its broker; check `stillvault daemon` logs';
    case 'too_many_requests':
      return 'this user already has the maximum number of requests waiting for approval; wait for one to end';
    case 'secret_not_found':
      return 'ask the admin to run `stillvault secret set PATH` for the missing path';
    case 'no_eligible_approver':
      return 'ask the admin to check `stillvault policy list`: a policy must name this consumer, cover every path and allow this caller';
    case 'request_refused':
      return 'the approvers\' devices rejected the request as invalid; ask the admin to check the policy and this daemon\'s certificate';
    default:
      return undefined;
  }
}

async function errorFromResponse(response: http.IncomingMessage): Promise<CliError> {
  const chunks: Buffer[] = [];
  for await (const chunk of response as AsyncIterable<Buffer>) chunks.push(chunk);
  try {
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: unknown; message?: unknown } };
    const code = typeof parsed.error?.code === 'string' ? parsed.error.code : 'daemon_error';
    const message = typeof parsed.error?.message === 'string' ? parsed.error.message : `HTTP ${response.statusCode ?? 0}`;
    return daemonError(code, message);
  } catch {
    return daemonError('daemon_error', `the daemon returned HTTP ${response.statusCode ?? 0} without a JSON error`);
  }
}

function parseLine(line: string): { type: string; [key: string]: unknown } {
  try {
    const value = JSON.parse(line) as unknown;
    if (typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string') return value as { type: string };
  } catch {
    // Reported below.
  }
  throw daemonError('daemon_error', 'the daemon sent a line that is not a JSON event');
}

function decodeSecrets(secrets: unknown, paths: readonly string[]): Map<string, Buffer> {
  const values = new Map<string, Buffer>();
  const record = (typeof secrets === 'object' && secrets !== null ? secrets : {}) as Record<string, unknown>;
  for (const path of paths) {
    const encoded = record[path];
    if (typeof encoded !== 'string') throw daemonError('daemon_error', `the daemon's result has no value for ${path}`);
    // NOTE: the base64 text is a JavaScript string from JSON.parse and cannot be wiped.
    values.set(path, Buffer.from(encoded, 'base64'));
  }
  return values;
}
