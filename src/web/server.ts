import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { BUNDLE_INDEX, type BundleFile } from './build.js';

/**
 * Serves the approver web app's static bundle. It loads exactly the files
 * that files.json lists into memory at start, so nothing else on disk can be
 * reached (no directory listing, no path traversal), and sends every response
 * with a Content-Security-Policy that allows scripts, styles and connections
 * from this origin plus connections to the one configured broker.
 */

export interface ApproverServerOptions {
  /** Directory holding the built bundle and its files.json. */
  bundleDir: string;
  /** HOST:PORT to listen on; port 0 picks a free port. */
  listen: string;
  /** The broker's URL; only its origin is used. Without it, the app may connect to its own origin only. */
  broker?: string;
}

export interface RunningApproverServer {
  url: string;
  close(): Promise<void>;
}

interface LoadedFile extends BundleFile {
  body: Buffer;
}

/** Returns the broker's origin for connect-src, or throws for anything but an http(s) URL without credentials. */
export function brokerOrigin(broker: string): string {
  let url: URL;
  try {
    url = new URL(broker);
  } catch {
    throw new Error(`invalid broker URL ${JSON.stringify(broker)}: expected http://HOST:PORT or https://HOST`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`broker URL must be http or https, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw new Error('broker URL must not contain credentials');
  return url.origin;
}

/** Builds the Content-Security-Policy header value. WebSocket origins are listed explicitly because not every browser maps http: to ws:. */
export function contentSecurityPolicy(broker: string | undefined): string {
  const connect = ["'self'"];
  if (broker !== undefined) {
    const origin = brokerOrigin(broker);
    connect.push(origin, origin.replace(/^http/, 'ws'));
  }
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "manifest-src 'self'",
    "worker-src 'self'",
    `connect-src ${connect.join(' ')}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
  ].join('; ');
}

async function loadBundle(bundleDir: string): Promise<Map<string, LoadedFile>> {
  let index: { files: BundleFile[] };
  try {
    index = JSON.parse(await readFile(join(bundleDir, BUNDLE_INDEX), 'utf8')) as { files: BundleFile[] };
  } catch (cause) {
    throw new Error(`no approver web app bundle in ${bundleDir} (${BUNDLE_INDEX} missing or invalid); run \`npm run build:web\``, { cause });
  }
  const files = new Map<string, LoadedFile>();
  for (const file of index.files) {
    if (!/^\/[A-Za-z0-9._-]+$/.test(file.path)) throw new Error(`${BUNDLE_INDEX} lists an invalid path ${JSON.stringify(file.path)}`);
    files.set(file.path, { ...file, body: await readFile(join(bundleDir, file.path.slice(1))) });
  }
  return files;
}

function securityHeaders(csp: string): Record<string, string> {
  return {
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  };
}

function handle(files: Map<string, LoadedFile>, config: Buffer, csp: string, request: IncomingMessage, response: ServerResponse): void {
  const headers = securityHeaders(csp);
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { ...headers, allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    response.end('method not allowed\n');
    return;
  }
  const pathname = new URL(request.url ?? '/', 'http://approver.invalid').pathname;
  if (pathname === '/config.json') {
    response.writeHead(200, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-cache' });
    response.end(request.method === 'HEAD' ? undefined : config);
    return;
  }
  const file = files.get(pathname === '/' ? '/index.html' : pathname);
  if (file === undefined) {
    response.writeHead(404, { ...headers, 'content-type': 'text/plain; charset=utf-8' });
    response.end('not found\n');
    return;
  }
  response.writeHead(200, {
    ...headers,
    'content-type': file.contentType,
    'content-length': String(file.body.length),
    'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  response.end(request.method === 'HEAD' ? undefined : file.body);
}

/** Starts the server and resolves once it listens. */
export async function startApproverServer(options: ApproverServerOptions): Promise<RunningApproverServer> {
  const match = /^(.+):(\d{1,5})$/.exec(options.listen);
  const port = Number(match?.[2]);
  if (match?.[1] === undefined || port > 65535) throw new Error(`invalid --listen ${JSON.stringify(options.listen)}: expected HOST:PORT, for example localhost:8650`);
  const host = match[1].replace(/^\[(.*)\]$/, '$1');

  const files = await loadBundle(options.bundleDir);
  const csp = contentSecurityPolicy(options.broker);
  const config = Buffer.from(JSON.stringify({ broker: options.broker === undefined ? null : brokerOrigin(options.broker) }));
  const server = createServer((request, response) => { handle(files, config, csp, request, response); });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address() as AddressInfo;
  const shownHost = host === '127.0.0.1' || host === '::1' || host === 'localhost' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => { resolve(); });
    }),
  };
}
