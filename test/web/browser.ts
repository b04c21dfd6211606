// Real Chromium for the web tests: the Debian package at /usr/bin/chromium,
// driven by playwright-core, with a CDP virtual authenticator that has
// user verification and (optionally) the PRF extension.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { describe } from 'vitest';

export const CHROMIUM_PATH = process.env.STILLVAULT_CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser tests cannot run here, or null when they can. */
export const browserMissing: string | null = existsSync(CHROMIUM_PATH) ? null : `Chromium not found at ${CHROMIUM_PATH} (apt-get install -y chromium)`;

/**
 * `describe` for browser suites: skipped with a reason when Chromium is
 * missing, except under CI=true, where the suite runs and fails instead.
 */
export const describeBrowser = browserMissing !== null && process.env.CI !== 'true'
  ? (name: string, body: () => void) => { describe.skip(`${name} (skipped: ${browserMissing})`, body); }
  : describe;

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Messages the page logged (console and page errors), for failure output. */
  logs: string[];
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  if (browserMissing !== null) throw new Error(browserMissing);
  const userDataDir = mkdtempSync(join(tmpdir(), 'sv-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? await context.newPage();
  const logs: string[] = [];
  page.on('console', (message) => { logs.push(`console.${message.type()}: ${message.text()}`); });
  page.on('pageerror', (error) => { logs.push(`pageerror: ${error.message}`); });
  return {
    context,
    page,
    logs,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Adds a CTAP2 platform authenticator with user verification; `prf` sets hasPrf. */
export async function addVirtualAuthenticator(page: Page, options: { prf: boolean }): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true,
      hasPrf: options.prf, automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}
