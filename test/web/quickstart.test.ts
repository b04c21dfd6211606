// `stillvault quickstart --web` end to end: the real CLI with its broker,
// approver web app server, daemon and agent processes, and real Chromium with
// a PRF virtual authenticator standing in for the person at the browser.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildWebApp, DEFAULT_BUNDLE_DIR } from '../../src/web/build.js';
import { addVirtualAuthenticator, describeBrowser, launchBrowser, type Browser } from './browser.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

interface Quickstart {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

function startQuickstart(directory: string): Quickstart {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('STILLVAULT_')));
  const child = spawn(process.execPath, [CLI, 'quickstart', '--web', '--dir', directory], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  child.stdin.end('web quickstart passphrase\n');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code); }));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Waits until the quickstart's stderr matches `pattern`, and returns the first group. */
async function waitForOutput(quickstart: Quickstart, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(quickstart.stderr());
    if (match?.[1] !== undefined) return match[1];
    if (quickstart.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`quickstart output never matched ${String(pattern)} (exit code ${String(quickstart.child.exitCode)}):\n${quickstart.stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describeBrowser('quickstart --web in Chromium', () => {
  let browser: Browser;
  let directory: string;
  const started: ChildProcess[] = [];

  beforeAll(async () => {
    await buildWebApp({ outDir: DEFAULT_BUNDLE_DIR, minify: true });
    directory = mkdtempSync(join(tmpdir(), 'sv-quickstart-web-'));
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
    await browser.close();
    rmSync(directory, { recursive: true, force: true });
  });

  async function waitForHeading(text: string, timeout = 30_000): Promise<void> {
    await browser.page.locator('h1', { hasText: text }).first().waitFor({ timeout });
  }

  it('enrolls and approves from the browser', async () => {
    const quickstart = startQuickstart(join(directory, 'demo'));
    started.push(quickstart.child);
    const link = await waitForOutput(quickstart, /^\s+(http:\/\/localhost:\d+\/#enroll=svinv1\.\S+)$/m);

    await addVirtualAuthenticator(browser.page, { prf: true });
    await browser.page.goto(link);
    await waitForHeading('Enroll this device');
    await browser.page.getByRole('button', { name: 'Create passkey and enroll' }).click();
    await waitForHeading('Waiting for your admin');
    const shown = (await browser.page.getByTestId('signing-fingerprint').textContent()) ?? '';
    expect(shown).not.toBe('');

    await waitForHeading('Approver locked', 60_000);
    expect(quickstart.stderr()).toContain(`signing key  ${shown}`);
    expect(quickstart.stderr()).toContain('approves the enrollment without asking');

    await waitForOutput(quickstart, /(In the browser: unlock)/);
    await browser.page.getByRole('button', { name: 'Unlock with biometric' }).click();
    await waitForHeading('Requests');
    const item = browser.page.locator('[data-request]').first();
    await item.waitFor({ timeout: 60_000 });
    await item.click();
    await waitForHeading('Approve this request?');
    expect(await browser.page.getByTestId('path').textContent()).toBe('demo/api-token');
    expect(await browser.page.getByTestId('reason').textContent()).toBe('quickstart demo: call the example API');
    await browser.page.getByRole('button', { name: 'Approve with biometric' }).click();
    await waitForHeading('Approved');

    const code = await quickstart.exited;
    expect(code, quickstart.stderr()).toBe(0);
    const prefix = /sha256 prefix ([0-9a-f]{16}) matches/.exec(quickstart.stderr())?.[1];
    expect(prefix, quickstart.stderr()).toBeDefined();
    expect(quickstart.stdout()).toContain(`agent: DEMO_API_TOKEN has 32 bytes, sha256 prefix ${prefix ?? ''}`);
    expect(quickstart.stdout()).toContain('agent: calling the API with token ***');
    expect(quickstart.stdout()).not.toMatch(/sv-demo-[0-9a-f]{24}/);
    expect(quickstart.stdout()).toContain('alice approved demo/api-token');
    expect(quickstart.stdout()).toMatch(/^ok \d+ /m);
  }, 240_000);

  it('stops every process on SIGINT', async () => {
    const quickstart = startQuickstart(join(directory, 'interrupted'));
    started.push(quickstart.child);
    const link = await waitForOutput(quickstart, /^\s+(http:\/\/localhost:\d+\/#enroll=svinv1\.\S+)$/m);
    const appUrl = new URL(link).origin;
    const broker = await waitForOutput(quickstart, /broker listening on (http:\/\/\S+)/);
    expect((await fetch(appUrl)).status).toBe(200);

    quickstart.child.kill('SIGINT');

    expect(await quickstart.exited).toBe(130);
    expect(quickstart.stderr()).toContain('interrupted; stopping');
    await expect(fetch(appUrl)).rejects.toThrow();
    await expect(fetch(`${broker}/v1/health`)).rejects.toThrow();
  }, 120_000);
});
