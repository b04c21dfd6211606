// A small HTTP proxy that plays a malicious broker: it forwards every call
// to the real broker and lets a test rewrite the bundles of
// GET /v1/orgs/:org/requests?state=pending on the way back.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type BundleRewrite = (bundles: Record<string, unknown>[]) => Record<string, unknown>[];

export interface Proxy {
  url: string;
  rewrite: BundleRewrite;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<Proxy> {
  const state = { rewrite: ((bundles) => bundles) as BundleRewrite };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const headers: Record<string, string> = {};
      for (const name of ['authorization', 'content-type', 'accept']) {
        const value = request.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      void fetch(target + (request.url ?? '/'), { method: request.method ?? 'GET', headers, ...(body === undefined ? {} : { body }) })
        .then(async (upstream) => {
          let text = await upstream.text();
          if (request.method === 'GET' && /\/requests\?state=pending$/.test(request.url ?? '') && upstream.ok) {
            const parsed = JSON.parse(text) as { requests: Record<string, unknown>[] };
            text = JSON.stringify({ requests: state.rewrite(parsed.requests) });
          }
          response.writeHead(upstream.status, { 'content-type': 'application/json' });
          response.end(text);
        })
        .catch(() => {
          response.writeHead(502);
          response.end('{"error":{"code":"bad_gateway","message":"proxy failed"}}');
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get rewrite() { return state.rewrite; },
    set rewrite(value: BundleRewrite) { state.rewrite = value; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); }),
  };
}
