import type { ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import QRCode from 'qrcode';
import { displayFingerprint } from '../../protocol/index.js';
import type { CliIo } from '../command.js';
import { CliError } from '../errors.js';
import { type ChildSet, waitForLine } from './children.js';

/**
 * The quickstart steps for the web approver: serve the app on localhost,
 * hand the user an enrollment link, and approve the enrollment the browser
 * submits once the user has compared the fingerprints.
 */

const ENROLLMENT_POLL_MS = 1000;
/** How long the quickstart waits for the browser to submit its enrollment. */
const ENROLLMENT_WAIT_MS = 15 * 60_000;

/** Asks a yes or no question on the terminal; undefined when stdin is not a terminal. */
export type Confirm = ((question: string) => Promise<boolean>) | undefined;

/**
 * Returns a free TCP port on localhost. The broker needs the app's origin
 * (`--allow-origin`) before it starts, and the app needs the broker's URL, so
 * the app's port is picked first. Another process could take the port in the
 * short gap before `approver serve` binds it; `approver serve` then fails and
 * the quickstart stops with its error.
 */
export async function freeLocalhostPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, 'localhost', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
  return port;
}

/** Starts `stillvault approver serve` for the broker and resolves with the app's URL and the server process. */
export async function startWebApprover(children: ChildSet, port: number, brokerUrl: string, env: NodeJS.ProcessEnv): Promise<{ url: string; server: ChildProcess }> {
  const server = children.spawnCli(['approver', 'serve', '--listen', `localhost:${port}`, '--broker', brokerUrl], env, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (!server.stdout || !server.stderr) throw new CliError('quickstart_step_failed', 'the approver web app server has no output pipes');
  let errors = '';
  server.stderr.on('data', (chunk: Buffer) => { errors += chunk.toString('utf8'); });
  try {
    const url = await waitForLine(server.stdout, 'the approver web app server', (line) => (line.startsWith('http://') ? line.trim() : undefined));
    return { url, server };
  } catch (error) {
    throw new CliError('quickstart_step_failed', `${(error as Error).message}\n${errors.trimEnd()}`, { hint: 'build the web app first: npm run build' });
  }
}

interface PendingEnrollment {
  id: string;
  name: string;
  platform: string;
  fingerprints: Record<string, string>;
}

/**
 * Issues a `--web` invite for `name`, prints the link and its QR code, and
 * waits until the browser submits the enrollment. Then it shows the key
 * fingerprints and approves the enrollment once the user confirms them, or at
 * once when `confirm` is undefined.
 */
export async function enrollWebApprover(
  children: ChildSet,
  options: { io: CliIo; adminEnv: NodeJS.ProcessEnv; appUrl: string; name: string; confirm: Confirm; signal: AbortSignal },
): Promise<void> {
  const { io, adminEnv, name, signal } = options;
  const link = (await children.runCli(['approver', 'invite', name, '--web', '--app', options.appUrl], adminEnv)).trim();
  io.stderr.write(await QRCode.toString(link, { type: 'terminal', small: true }));
  io.stderr.write(`Open this link in a browser on this machine (WebAuthn needs localhost), and create the passkey there:\n\n  ${link}\n\n`);
  io.stderr.write('Waiting for the browser to submit its enrollment (Ctrl-C stops the demo) ...\n');

  const enrollment = await waitForEnrollment(children, adminEnv, name, signal);
  io.stderr.write(`\nThe browser submitted enrollment ${enrollment.id} (platform ${enrollment.platform}) with these keys:\n`);
  for (const [label, fingerprint] of Object.entries(enrollment.fingerprints)) {
    io.stderr.write(`  ${label.replace(/Key$/, ' key').padEnd(12)} ${displayFingerprint(fingerprint)}\n`);
  }
  if (options.confirm === undefined) {
    io.stderr.write('stdin is not a terminal, so the quickstart approves the enrollment without asking.\n');
  } else if (!await options.confirm('Do they match the fingerprints the browser shows? [y/N] ')) {
    throw new CliError('enrollment_not_confirmed', 'the enrollment was not approved because the fingerprints were not confirmed', {
      hint: 'run the quickstart again; an enrollment whose fingerprints differ from the browser\'s came from someone else',
    });
  }
  await children.runCli(['enrollments', 'approve', enrollment.id, '--yes'], adminEnv);
  io.stderr.write(`Approved: "${name}" is now a web approver. The browser picks up its certificate by itself.\n`);
}

async function waitForEnrollment(children: ChildSet, adminEnv: NodeJS.ProcessEnv, name: string, signal: AbortSignal): Promise<PendingEnrollment> {
  const deadline = Date.now() + ENROLLMENT_WAIT_MS;
  for (;;) {
    const pending = JSON.parse(await children.runCli(['enrollments', 'list', '--format', 'json'], adminEnv)) as PendingEnrollment[];
    const enrollment = pending.find((item) => item.name === name);
    if (enrollment !== undefined) return enrollment;
    if (Date.now() > deadline) {
      throw new CliError('quickstart_step_failed', `no enrollment for ${JSON.stringify(name)} arrived within ${ENROLLMENT_WAIT_MS / 60_000} minutes`);
    }
    await sleep(ENROLLMENT_POLL_MS, undefined, { signal });
  }
}
