// A malicious broker for attack tests: an HTTP and WebSocket relay that
// listens on 127.0.0.1:0, forwards everything to the real broker, records
// every JSON body and message, and lets a test rewrite, drop, replay or
// inject them in either direction. Clients enrolled through the relay's URL
// (`init --broker RELAY_URL`) talk to it as if it were the broker.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';

/** One HTTP call as the relay saw it. */
export interface HttpCall {
  method: string;
  /** Path and query, e.g. `/v1/orgs/ORG/requests?state=pending`. */
  url: string;
}

/** A JSON WebSocket message. */
export type WsMessage = { type: string; [key: string]: unknown };

/** One client WebSocket session, with the principal the broker named in its `ready` message. */
export interface RelaySession {
  role: string | undefined;
  id: string | undefined;
  /** Sends a message to the client as if the broker had sent it. */
  sendToClient(message: WsMessage): void;
}

/** A recorded body or message. */
export interface Recorded {
  direction: 'to-broker' | 'to-client';
  channel: 'http' | 'ws';
  method?: string;
  url?: string;
  status?: number;
  role?: string | undefined;
  body: unknown;
}

/**
 * Rewrites installed by a test. Each returns the value to forward. A
 * WebSocket hook returns a list, so it can drop (`[]`) or add messages.
 */
export interface RelayHooks {
  httpRequest?: (call: HttpCall, body: unknown) => unknown;
  httpResponse?: (call: HttpCall, body: unknown, status: number) => unknown;
  wsToClient?: (message: WsMessage, session: RelaySession) => WsMessage[];
  wsToBroker?: (message: WsMessage, session: RelaySession) => WsMessage[];
}

export interface Relay {
  url: string;
  hooks: RelayHooks;
  /** Every JSON body and message seen, in order, after rewriting. */
  readonly recorded: Recorded[];
  readonly sessions: ReadonlySet<RelaySession>;
  /** Sends `message` to every open session of `role` as if the broker had sent it. */
  inject(role: string, message: WsMessage): number;
  close(): Promise<void>;
}

const MAX_PAYLOAD = 4 * 1024 * 1024;
/** Request headers forwarded to the broker; hop-by-hop and length headers are recomputed. */
const FORWARDED_HEADERS = ['authorization', 'content-type', 'accept', 'origin'];

export async function startRelay(target: string): Promise<Relay> {
  const recorded: Recorded[] = [];
  const sessions = new Set<RelaySession>();
  const relay: Relay = {
    url: '',
    hooks: {},
    recorded,
    sessions,
    inject(role, message) {
      let sent = 0;
      for (const session of sessions) {
        if (session.role !== role) continue;
        session.sendToClient(message);
        sent++;
      }
      return sent;
    },
    close: () => Promise.resolve(),
  };

  const server: Server = createServer((request, response) => {
    forwardHttp(target, relay, request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(502, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { code: 'bad_gateway', message: `relay failed: ${(error as Error).message}` } }));
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD });
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    wss.handleUpgrade(request, socket, head, (client) => {
      relayWebSocket(target, relay, sessions, client, request.url ?? '/v1/ws');
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  relay.url = `http://127.0.0.1:${port}`;
  relay.close = async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  };
  return relay;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

async function forwardHttp(target: string, relay: Relay, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const call: HttpCall = { method: request.method ?? 'GET', url: request.url ?? '/' };
  const headers: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = request.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }

  let body: string | undefined;
  const raw = await readBody(request);
  if (raw.length > 0) {
    body = raw.toString('utf8');
    const parsed = parseJson(body);
    if (parsed !== undefined) {
      const rewritten = relay.hooks.httpRequest ? relay.hooks.httpRequest(call, parsed) : parsed;
      body = JSON.stringify(rewritten);
      relay.recorded.push({ direction: 'to-broker', channel: 'http', method: call.method, url: call.url, body: rewritten });
    }
  }

  const upstream = await fetch(target + call.url, { method: call.method, headers, ...(body === undefined ? {} : { body }) });
  let text = await upstream.text();
  const parsed = parseJson(text);
  if (parsed !== undefined) {
    const rewritten = relay.hooks.httpResponse ? relay.hooks.httpResponse(call, parsed, upstream.status) : parsed;
    text = JSON.stringify(rewritten);
    relay.recorded.push({ direction: 'to-client', channel: 'http', method: call.method, url: call.url, status: upstream.status, body: rewritten });
  }
  response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
  response.end(text);
}

/** Close codes a server may send: 1000-1003, 1007-1014 and 3000-4999. Others become 1000. */
function sendableCloseCode(code: number): number {
  if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) return code;
  return 1000;
}

function relayWebSocket(target: string, relay: Relay, sessions: Set<RelaySession>, client: WebSocket, path: string): void {
  const upstream = new WebSocket(target.replace(/^http/, 'ws') + path, { maxPayload: MAX_PAYLOAD });
  const pending: string[] = [];
  const session: RelaySession = {
    role: undefined,
    id: undefined,
    sendToClient(message) {
      if (client.readyState === WebSocket.OPEN) client.send(JSON.stringify(message));
    },
  };
  sessions.add(session);

  const toBroker = (text: string): void => {
    if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
    else pending.push(text);
  };

  client.on('message', (data: WebSocket.RawData) => {
    const message = parseJson(rawText(data)) as WsMessage | undefined;
    if (message === undefined || typeof message.type !== 'string') {
      toBroker(rawText(data));
      return;
    }
    const out = relay.hooks.wsToBroker ? relay.hooks.wsToBroker(message, session) : [message];
    for (const item of out) {
      relay.recorded.push({ direction: 'to-broker', channel: 'ws', role: session.role, body: item });
      toBroker(JSON.stringify(item));
    }
  });

  upstream.on('open', () => {
    for (const text of pending.splice(0)) upstream.send(text);
  });
  upstream.on('message', (data: WebSocket.RawData) => {
    const message = parseJson(rawText(data)) as WsMessage | undefined;
    if (message === undefined || typeof message.type !== 'string') {
      if (client.readyState === WebSocket.OPEN) client.send(rawText(data));
      return;
    }
    if (message.type === 'ready') {
      session.role = typeof message.role === 'string' ? message.role : undefined;
      session.id = typeof message.id === 'string' ? message.id : undefined;
    }
    const out = relay.hooks.wsToClient ? relay.hooks.wsToClient(message, session) : [message];
    for (const item of out) {
      relay.recorded.push({ direction: 'to-client', channel: 'ws', role: session.role, body: item });
      session.sendToClient(item);
    }
  });

  const closeBoth = (code: number, reason: string): void => {
    sessions.delete(session);
    if (client.readyState === WebSocket.OPEN) client.close(sendableCloseCode(code), reason);
    if (upstream.readyState === WebSocket.OPEN || upstream.readyState === WebSocket.CONNECTING) upstream.terminate();
  };
  upstream.on('close', (code, reason) => { closeBoth(code, reason.toString('utf8')); });
  upstream.on('error', () => { closeBoth(1011, 'relay: broker connection failed'); });
  client.on('close', () => {
    sessions.delete(session);
    if (upstream.readyState === WebSocket.OPEN) upstream.close(1000);
    else upstream.terminate();
  });
  client.on('error', () => { client.terminate(); });
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
