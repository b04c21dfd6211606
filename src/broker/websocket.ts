import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { principalForToken } from './auth.js';
import type { BrokerContext, Principal } from './context.js';
import { toBrokerError } from './errors.js';
import type { ServerMessage } from './hub.js';
import { acknowledgeDelivery, acknowledgeResult, redeliver } from './requests.js';
import { isRecord } from '../protocol/signed.js';

const AUTH_TIMEOUT_MS = 10_000;
export const WEBSOCKET_PATH = '/v1/ws';

function sendMessage(socket: WebSocket, message: ServerMessage): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
}

function parseMessage(data: RawData): Record<string, unknown> | null {
  try {
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const value = JSON.parse(text) as unknown;
    return isRecord(value) ? value : null;
  } catch {
    return null;
  }
}

async function handleAuthenticatedMessage(ctx: BrokerContext, principal: Principal, socket: WebSocket, message: Record<string, unknown>): Promise<void> {
  if (message.type === 'ping') {
    sendMessage(socket, { type: 'pong' });
    return;
  }
  if (message.type === 'ack' && typeof message.request === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(message.request)) {
    if (principal.role === 'device') await acknowledgeDelivery(ctx, principal, message.request);
    else if (principal.role === 'consumer') await acknowledgeResult(ctx, principal, message.request);
    return;
  }
  sendMessage(socket, { type: 'error', code: 'invalid_request', message: 'expected {type: "ack", request} or {type: "ping"}' });
}

/** Runs one connection: the first message must authenticate, then acks and pings follow. */
function serveConnection(ctx: BrokerContext, socket: WebSocket): void {
  let principal: Principal | null = null;
  const authTimer = setTimeout(() => { socket.close(4401, 'authentication timed out'); }, AUTH_TIMEOUT_MS);

  socket.on('message', (data) => {
    const message = parseMessage(data);
    if (message === null) {
      ctx.metrics.countError('invalid_json');
      sendMessage(socket, { type: 'error', code: 'invalid_json', message: 'messages must be JSON objects' });
      return;
    }
    if (principal === null) {
      if (message.type !== 'auth' || typeof message.token !== 'string') {
        socket.close(4401, 'first message must be {type: "auth", token}');
        return;
      }
      principalForToken(ctx, message.token).then(async (found) => {
        clearTimeout(authTimer);
        principal = found;
        ctx.hub.add(found, socket);
        sendMessage(socket, { type: 'ready', role: found.role, id: found.id });
        ctx.logger.info({ event: 'ws-connected', org: found.org, role: found.role, id: found.id }, 'client connected');
        await redeliver(ctx, found);
      }).catch((error: unknown) => {
        const failure = toBrokerError(error);
        ctx.metrics.countError(failure.code);
        ctx.logger.info({ event: 'ws-auth-failed', code: failure.code }, failure.message);
        socket.close(4401, failure.code);
      });
      return;
    }
    const current = principal;
    handleAuthenticatedMessage(ctx, current, socket, message).catch((error: unknown) => {
      const failure = toBrokerError(error);
      ctx.metrics.countError(failure.code);
      if (failure.status >= 500) ctx.logger.error({ event: 'ws-error', org: current.org, id: current.id, err: failure.cause }, 'message failed');
      sendMessage(socket, { type: 'error', code: failure.code, message: failure.message });
    });
  });

  socket.on('close', () => {
    clearTimeout(authTimer);
    if (principal !== null) {
      ctx.hub.remove(principal, socket);
      ctx.logger.info({ event: 'ws-disconnected', org: principal.org, role: principal.role, id: principal.id }, 'client disconnected');
    }
  });
  socket.on('error', (error) => {
    ctx.metrics.countError('ws_error');
    ctx.logger.info({ event: 'ws-error', message: error.message }, 'websocket error');
  });
}

/** Creates the WebSocket side; the HTTP server hands it upgrades for WEBSOCKET_PATH. */
export function createWebSocketServer(ctx: BrokerContext): { handleUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void; close: () => void } {
  const server = new WebSocketServer({ noServer: true, maxPayload: ctx.limits.maxBodyBytes });
  server.on('connection', (socket) => { serveConnection(ctx, socket); });
  return {
    handleUpgrade(request, socket, head) {
      const path = new URL(request.url ?? '/', 'http://broker.invalid').pathname;
      if (path !== WEBSOCKET_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
        return;
      }
      server.handleUpgrade(request, socket, head, (ws) => { server.emit('connection', ws, request); });
    },
    close() {
      ctx.hub.closeAll();
      server.close();
    },
  };
}
