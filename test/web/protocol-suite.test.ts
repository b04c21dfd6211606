// Runs the protocol core's own test files inside Chromium, bundled with
// esbuild and a small 'vitest' stand-in (vitest-shim.ts), and checks that
// every case passed. Left out because they need Node: browser-safe.test.ts
// (reads the sources with node:fs), opaque.test.ts (node:util inspect) and
// storage.test.ts (real databases).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as esbuild from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeBrowser, launchBrowser, type Browser } from './browser.js';

const BROWSER_SAFE_FILES = ['aead', 'flow', 'hpke', 'objects', 'paths', 'property'];
const ROOT = join(import.meta.dirname, '../..');

interface CaseResult {
  name: string;
  ok: boolean;
  error?: string;
}

async function bundleSuite(extra = ''): Promise<string> {
  const imports = BROWSER_SAFE_FILES.map((name) => `import './${name}.test.ts';`).join('\n') + extra;
  const result = await esbuild.build({
    stdin: {
      contents: `${imports}\nimport { runRegisteredTests } from 'vitest';\nrunRegisteredTests().then((results) => { window.__results = results; });\n`,
      resolveDir: join(ROOT, 'test/protocol'),
      sourcefile: 'suite-entry.ts',
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome116'],
    write: false,
    alias: { vitest: join(ROOT, 'test/web/vitest-shim.ts') },
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (output === undefined) throw new Error('esbuild produced no bundle');
  return output.text;
}

describeBrowser('protocol suite in Chromium', () => {
  let server: Server;
  let url: string;
  let browser: Browser;

  beforeAll(async () => {
    const script = await bundleSuite();
    // The same suite plus one case that must fail, to show that failures are reported.
    const failing = await bundleSuite("\nimport { it as shimIt, expect as shimExpect } from 'vitest';\nshimIt('must fail', () => { shimExpect(1).toBe(2); });\n");
    server = createServer((request, response) => {
      if (request.url === '/suite.js' || request.url === '/failing.js') {
        response.writeHead(200, { 'content-type': 'text/javascript' });
        response.end(request.url === '/suite.js' ? script : failing);
        return;
      }
      const source = request.url?.endsWith('?failing') === true ? '/failing.js' : '/suite.js';
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end(`<!doctype html><title>protocol suite</title><script type="module" src="${source}"></script>`);
    });
    await new Promise<void>((resolve) => { server.listen(0, 'localhost', resolve); });
    url = `http://localhost:${(server.address() as AddressInfo).port}/`;
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser.close();
    await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
  });

  it('reports a failing case', async () => {
    await browser.page.goto(url + '?failing');
    await browser.page.waitForFunction(() => (window as unknown as { __results?: unknown }).__results !== undefined, undefined, { timeout: 120_000 });
    const results = await browser.page.evaluate(() => (window as unknown as { __results: CaseResult[] }).__results);
    expect(results.filter((result) => !result.ok).map((result) => result.name)).toEqual(['must fail']);
  }, 180_000);

  it('passes every case', async () => {
    await browser.page.goto(url);
    await browser.page.waitForFunction(() => (window as unknown as { __results?: unknown }).__results !== undefined, undefined, { timeout: 120_000 });
    const results = await browser.page.evaluate(() => (window as unknown as { __results: CaseResult[] }).__results);
    const failed = results.filter((result) => !result.ok);
    process.stderr.write(`protocol suite in Chromium: ${results.length - failed.length} of ${results.length} cases passed\n`);
    expect(failed.map((result) => `${result.name}: ${result.error ?? ''}`), browser.logs.join('\n')).toEqual([]);
    expect(results.length).toBeGreaterThan(50);
  }, 180_000);
});
