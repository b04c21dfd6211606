// Processes and servers for the web approver tests: a real broker process
// that sends CORS headers for the app's origin, the app's own static server, and
// a relay between the app and the broker that can tamper with what the
// broker delivers.
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { spawnBroker as spawnBrokerProcess, type BrokerProcess } from '../broker/fixtures.js';
import WebSocket, { WebSocketServer } from 'ws';

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
  return port;
}

export type { BrokerProcess };

/** Starts `node dist/broker/main.js` on a free port with `--allow-origin` for the app, plus `extraArgs`. */
export function spawnBroker(allowOrigin: string, extraArgs: string[] = []): Promise<BrokerProcess> {
  return spawnBrokerProcess({ extraArgs: ['--allow-origin', allowOrigin, ...extraArgs] });
}

/** A message rewriter for the relay; it gets parsed JSON and returns what to send on. */
export type Tamper = (message: Record<string, unknown>) => Record<string, unknown>;

export interface Relay {
  url: string;
  /** When set, applied to every JSON body and WebSocket message the broker sends to the app. */
  tamper: Tamper | null;
  close(): Promise<void>;
}

/**
 * Starts an HTTP and WebSocket relay to `target`, standing in for a broker
 * (or a network) that changes what it relays.
 */
export async function startRelay(target: string): Promise<Relay> {
  const upstream = new URL(target);
  const relay: Relay = { url: '', tamper: null, close: () => Promise.resolve() };
  const rewrite = (text: string): string => {
    if (relay.tamper === null) return text;
    try {
      return JSON.stringify(relay.tamper(JSON.parse(text) as Record<string, unknown>));
    } catch {
      return text;
    }
  };

  const server: Server = createServer((incoming: IncomingMessage, outgoing) => {
    const forward = httpRequest({
      host: upstream.hostname, port: upstream.port, method: incoming.method, path: incoming.url,
      headers: { ...incoming.headers, host: upstream.host },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = Buffer.from(rewrite(Buffer.concat(chunks).toString('utf8')));
        const headers = { ...response.headers };
        delete headers['content-length'];
        outgoing.writeHead(response.statusCode ?? 502, { ...headers, 'content-length': String(body.length) });
        outgoing.end(body);
      });
    });
    forward.on('error', () => { outgoing.writeHead(502).end(); });
    incoming.pipe(forward);
  });

  const sockets = new WebSocketServer({ noServer: true });
  server.on('upgrade', (incoming, socket, head) => {
    sockets.handleUpgrade(incoming, socket, head, (client) => {
      const broker = new WebSocket(upstream.origin.replace(/^http/, 'ws') + (incoming.url ?? '/'));
      const queued: string[] = [];
      client.on('message', (data: Buffer) => {
        if (broker.readyState === WebSocket.OPEN) broker.send(data.toString('utf8'));
        else queued.push(data.toString('utf8'));
      });
      broker.on('open', () => { for (const text of queued.splice(0)) broker.send(text); });
      broker.on('message', (data: Buffer) => { client.send(rewrite(data.toString('utf8'))); });
      broker.on('close', (code) => { client.close(code === 1005 ? 1000 : code); });
      client.on('close', () => { broker.close(); });
      broker.on('error', () => { client.close(); });
    });
  });

  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  relay.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  relay.close = () => new Promise<void>((resolve) => {
    for (const client of sockets.clients) client.terminate();
    sockets.close();
    server.closeAllConnections();
    server.close(() => { resolve(); });
  });
  return relay;
}
