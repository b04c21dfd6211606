import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { CliIo } from '../command.js';
import { CliError } from '../errors.js';
import { ChildSet, exitOf, waitForLine } from './children.js';
import { enrollWebApprover, freeLocalhostPort, startWebApprover, type Confirm } from './web.js';

/** Options of one quickstart run. */
export interface DemoOptions {
  directory: string;
  passphrase: string;
  /** The approver alice uses: `stillvault approve` in this terminal, or the web app in a browser. */
  approver: 'terminal' | 'web';
  /** The terminal approver's decision when stdin is not a terminal; undefined means the approver asks on the terminal. */
  scriptedDecision: 'y' | 'n' | undefined;
  /** Asks the user to confirm the web approver's fingerprints; undefined approves without asking (stdin is not a terminal). */
  confirm: Confirm;
  /** Aborted on Ctrl-C, to stop waiting for the browser. */
  signal: AbortSignal;
}

export const DEMO_SECRET_PATH = 'demo/api-token';
const DEMO_VARIABLE = 'DEMO_API_TOKEN';

/**
 * The demo agent: it proves that it received the secret by printing its
 * length and a SHA-256 prefix, and prints the value itself too, which
 * `stillvault run` masks in the output.
 */
const AGENT_SCRIPT = [
  "const v = process.env.DEMO_API_TOKEN ?? '';",
  "const h = require('node:crypto').createHash('sha256').update(v).digest('hex').slice(0, 16);",
  'console.log(`agent: DEMO_API_TOKEN has ${v.length} bytes, sha256 prefix ${h}`);',
  'console.log(`agent: calling the API with token ${v}`);',
].join(' ');

/** Runs the whole loop once. Every child it starts is stopped before it returns or throws. */
export async function runDemo(io: CliIo, children: ChildSet, options: DemoOptions): Promise<number> {
  const say = (text: string): void => {
    io.stderr.write(`\n== ${text}\n`);
  };
  const homes = {
    admin: path.join(options.directory, 'admin'),
    approver: path.join(options.directory, 'approver-alice'),
    host: path.join(options.directory, 'agent-host'),
  };
  const envFor = (home: string): NodeJS.ProcessEnv => ({
    ...io.env, STILLVAULT_HOME: home, STILLVAULT_PASSPHRASE: options.passphrase, STILLVAULT_SOCKET: path.join(options.directory, 'run', 'daemon.sock'),
  });

  const web = options.approver === 'web';
  let webServer: ChildProcess | undefined;
  try {
    say('Starting an embedded broker (SQLite)');
    const appPort = web ? await freeLocalhostPort() : undefined;
    // The web approver receives requests only while it is unlocked, so the broker gives the user 5 minutes, not 30 s, to unlock it.
    const webArgs = appPort === undefined ? [] : ['--allow-origin', `http://localhost:${appPort}`, '--delivery-window', '300'];
    const brokerUrl = await startBroker(children, path.join(options.directory, 'broker'), io.env, webArgs);
    io.stderr.write(`broker listening on ${brokerUrl}\n`);

    say('Creating the demo org and its Org Identity key');
    const fingerprint = (await children.runCli(['init', '--org', 'demo', '--broker', brokerUrl], envFor(homes.admin))).trim();
    io.stderr.write(`Org Identity fingerprint: ${fingerprint}\n`);

    if (appPort === undefined) {
      say('Enrolling approver "alice" (a terminal approver) and host "agent-host"');
      await enroll(children, 'approver', 'alice', envFor(homes.admin), envFor(homes.approver));
    } else {
      say('Serving the web approver (stillvault approver serve)');
      const started = await startWebApprover(children, appPort, brokerUrl, io.env);
      webServer = started.server;
      const appUrl = started.url;
      io.stderr.write(`approver web app at ${appUrl}\n`);
      say('Enrolling approver "alice" (the web approver in your browser) and host "agent-host"');
      await enrollWebApprover(children, { io, adminEnv: envFor(homes.admin), appUrl, name: 'alice', confirm: options.confirm, signal: options.signal });
    }
    await enroll(children, 'daemon', 'agent-host', envFor(homes.admin), envFor(homes.host));

    say(`Writing policy "demo" and the secret ${DEMO_SECRET_PATH}`);
    await children.runCli(['policy', 'set', 'demo', '--paths', 'demo/**', '--approvers', 'alice', '--quorum', '1', '--max-lease', '5m', '--consumers', 'agent-host'], envFor(homes.admin));
    const secret = `sv-demo-${randomBytes(12).toString('hex')}`;
    await children.runCli(['secret', 'set', DEMO_SECRET_PATH, '--policy', 'demo'], envFor(homes.admin), secret);
    const expectedPrefix = createHash('sha256').update(secret).digest('hex').slice(0, 16);

    say('Starting the consumer daemon on agent-host');
    await startDaemon(children, envFor(homes.host));

    say(`The agent runs: stillvault run --env ${DEMO_VARIABLE}=sv://${DEMO_SECRET_PATH} -- node -e '…'`);
    const agent = startAgent(children, envFor(homes.host), io);
    await waitForLine(agent.stderr, 'the agent\'s request', (line) => (line.includes('waiting for a decision') ? true : undefined), 60_000);

    let approver: ChildProcess;
    if (webServer !== undefined) {
      say('Approver alice decides (web approver)');
      io.stderr.write('In the browser: unlock with the passkey, open the request, and approve it (or deny it). Waiting for the decision ...\n');
      approver = webServer;
    } else {
      say('Approver alice decides (terminal approver)');
      approver = startApprover(children, envFor(homes.approver), options.scriptedDecision);
    }
    const first = await firstExit(agent.child, approver);
    if (first.which === 'approver' && first.code !== 0) {
      // Ctrl-C (exit 130) or a failure before a decision: waiting for the agent would only wait out the request's expiry.
      io.stderr.write(`\nThe approver exited with code ${first.code} before the agent finished; stopping the demo.\n`);
      return first.code;
    }
    const agentCode = first.which === 'agent' ? first.code : await exitOf(agent.child);
    const approverNote = webServer === undefined ? `, approver exit code ${await exitOf(approver)}` : '';

    say('Result');
    io.stderr.write(agentCode === 0
      ? `The agent received the secret: sha256 prefix ${expectedPrefix} matches, and its output shows *** in place of the value.\n`
      : `The agent did not get the secret (exit code ${agentCode}${approverNote}).\n`);

    say('Audit trail (stillvault audit tail), then stillvault audit verify');
    io.stdout.write(await children.runCli(['audit', 'tail'], envFor(homes.admin)));
    io.stdout.write(await children.runCli(['audit', 'verify'], envFor(homes.admin)));
    return agentCode;
  } finally {
    await children.stopAll();
  }
}

async function startBroker(children: ChildSet, dataDirectory: string, env: NodeJS.ProcessEnv, extraArgs: string[]): Promise<string> {
  const broker = children.spawnCli(['broker', '--listen', '127.0.0.1:0', '--data', dataDirectory, ...extraArgs], env, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (!broker.stderr) throw new CliError('quickstart_step_failed', 'the broker has no stderr pipe');
  return waitForLine(broker.stderr, 'the broker', (line) => logField(line, 'broker started', 'url'));
}

async function startDaemon(children: ChildSet, env: NodeJS.ProcessEnv): Promise<void> {
  const daemon = children.spawnCli(['daemon', '--socket', env.STILLVAULT_SOCKET ?? ''], env, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (!daemon.stderr) throw new CliError('quickstart_step_failed', 'the daemon has no stderr pipe');
  await waitForLine(daemon.stderr, 'the daemon', (line) => logField(line, 'daemon started', 'socket'));
  daemon.stderr.resume();
}

/** Returns `field` of a JSON log line whose message is `message`. */
function logField(line: string, message: string, field: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const record = JSON.parse(line) as Record<string, unknown>;
    const value = record[field];
    return record.msg === message && typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Runs both sides of an enrollment: invite on the admin, enroll on the member, approve on the admin, fetch the certificate. */
async function enroll(children: ChildSet, role: 'approver' | 'daemon', name: string, adminEnv: NodeJS.ProcessEnv, memberEnv: NodeJS.ProcessEnv): Promise<void> {
  const token = (await children.runCli([role, 'invite', name], adminEnv)).trim();
  await children.runCli([role, 'enroll', '--invite', token], memberEnv);
  const pending = JSON.parse(await children.runCli(['enrollments', 'list', '--format', 'json'], adminEnv)) as { id: string; name: string }[];
  const enrollment = pending.find((item) => item.name === name);
  if (enrollment === undefined) throw new CliError('quickstart_step_failed', `the enrollment of ${name} is not pending at the broker`);
  await children.runCli(['enrollments', 'approve', enrollment.id, '--yes'], adminEnv);
  await children.runCli(role === 'approver' ? ['approver', 'status', '--wait'] : ['daemon', 'enroll', '--wait'], memberEnv);
}

function startAgent(children: ChildSet, env: NodeJS.ProcessEnv, io: CliIo): { child: ChildProcess; stderr: NodeJS.ReadableStream } {
  const child = children.spawnCli([
    'run', '--env', `${DEMO_VARIABLE}=sv://${DEMO_SECRET_PATH}`, '--reason', 'quickstart demo: call the example API',
    '--', process.execPath, '-e', AGENT_SCRIPT,
  ], env, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (!child.stdout || !child.stderr) throw new CliError('quickstart_step_failed', 'the agent has no output pipes');
  child.stdout.on('data', (chunk: Buffer) => io.stdout.write(chunk));
  child.stderr.on('data', (chunk: Buffer) => io.stderr.write(chunk));
  return { child, stderr: child.stderr };
}

/** Starts `stillvault approve` once: on the terminal, or fed the scripted decision. */
function startApprover(children: ChildSet, env: NodeJS.ProcessEnv, decision: 'y' | 'n' | undefined): ChildProcess {
  if (decision === undefined) return children.spawnCli(['approve'], env, { stdio: 'inherit' });
  const approver = children.spawnCli(['approve'], env, { stdio: ['pipe', 'inherit', 'inherit'] });
  approver.stdin?.end(`${decision}\n`);
  return approver;
}

/** Resolves with whichever of the agent and the approver exits first, and its exit code. */
function firstExit(agent: ChildProcess, approver: ChildProcess): Promise<{ which: 'agent' | 'approver'; code: number }> {
  return Promise.race([
    exitOf(agent).then((code) => ({ which: 'agent' as const, code })),
    exitOf(approver).then((code) => ({ which: 'approver' as const, code })),
  ]);
}

/** Makes the demo directory, replacing one left by an earlier quickstart and refusing anything else. */
export async function prepareDirectory(directory: string): Promise<void> {
  const marker = path.join(directory, '.stillvault-quickstart');
  const entries = await fs.readdir(directory).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  });
  if (entries.length > 0) {
    const ours = await fs.stat(marker).then(() => true, () => false);
    if (!ours) {
      throw new CliError('directory_not_empty', `${directory} exists and was not made by the quickstart`, {
        hint: 'choose another folder with --dir, or remove this one',
      });
    }
    await fs.rm(directory, { recursive: true, force: true });
  }
  await fs.mkdir(path.join(directory, 'run'), { recursive: true, mode: 0o700 });
  await fs.chmod(directory, 0o700);
  await fs.writeFile(marker, 'made by `stillvault quickstart`; safe to delete\n', { mode: 0o600 });
}
