// End-to-end tests of `stillvault run` and `stillvault inject` against a real
// broker, a real daemon and a simulated approver.
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Approver, daemonEnv, defined, makeDaemonWorld, runCli, spawnDaemon, type DaemonProcess, type DaemonWorld } from '../daemon/world.js';

const TOKEN = 'tok-5d1e8a-not-a-real-secret';
const PRINT_TOKEN = 'process.stdout.write("value=" + process.env.API_TOKEN + "\\n")';

let world: DaemonWorld;
let daemon: DaemonProcess;
let approver: Approver;
let scratch: string;

beforeAll(async () => {
  world = await makeDaemonWorld({ 'prod/api/token': TOKEN, 'prod/denied': 'never-shown', 'prod/inject': 'inject-value' });
  daemon = await spawnDaemon(world);
  approver = new Approver(world);
  await approver.start();
  scratch = mkdtempSync(join(tmpdir(), 'sv-cli-'));
});

afterAll(async () => {
  await approver.stop();
  await daemon.stop();
  await world.broker.stop();
});

describe('stillvault run', () => {
  it('masks the secret in the child output', async () => {
    const result = await runCli(['run', '--env', 'API_TOKEN=sv://prod/api/token', '--', process.execPath, '-e', PRINT_TOKEN], { env: daemonEnv(world) });
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toBe('value=***\n');
  });

  it('passes the value unmasked with --no-masking', async () => {
    const result = await runCli(['run', '--no-masking', '--env', 'API_TOKEN=sv://prod/api/token', '--', process.execPath, '-e', PRINT_TOKEN], { env: daemonEnv(world) });
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toBe(`value=${TOKEN}\n`);
  });

  it('resolves references from an env file and the environment', async () => {
    const envFile = join(scratch, 'app.env');
    writeFileSync(envFile, 'API_TOKEN=sv://prod/api/token\nPLAIN="hello world"\n');
    const script = 'process.stdout.write([process.env.API_TOKEN, process.env.PLAIN, process.env.FROM_ENV].join("|"))';
    const result = await runCli(['run', '--no-masking', '--env-file', envFile, '--', process.execPath, '-e', script], {
      env: { ...daemonEnv(world), FROM_ENV: 'sv://prod/api/token' },
    });
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toBe(`${TOKEN}|hello world|${TOKEN}`);
  });

  it('does not start the command when denied', async () => {
    approver.decision = 'deny';
    const marker = join(scratch, 'started');
    try {
      const result = await runCli(['run', '--env', 'DB_PASSWORD=sv://prod/denied', '--', process.execPath, '-e', `require("fs").writeFileSync(${JSON.stringify(marker)}, "")`], {
        env: daemonEnv(world),
      });
      expect(result.code).toBe(3);
      expect(result.stderr).toContain('DB_PASSWORD (sv://prod/denied)');
      expect(result.stderr).toContain('not started');
      expect(existsSync(marker)).toBe(false);
    } finally {
      approver.decision = 'approve';
    }
  });

  it('runs without the daemon when nothing is referenced', async () => {
    const result = await runCli(['run', '--env', 'PLAIN=1', '--socket', join(scratch, 'none.sock'), '--', process.execPath, '-e', 'process.stdout.write(process.env.PLAIN)']);
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toBe('1');
  });

  it('exits with the child exit code', async () => {
    const result = await runCli(['run', '--env', 'API_TOKEN=sv://prod/api/token', '--', process.execPath, '-e', 'process.exit(7)'], { env: daemonEnv(world) });
    expect(result.code).toBe(7);
  });

  it('exits 127 for a missing command', async () => {
    const result = await runCli(['run', '--', join(scratch, 'no-such-command')]);
    expect(result.code).toBe(127);
  });

  it('forwards SIGTERM to the child', async () => {
    const script = 'process.on("SIGTERM", () => { process.stdout.write("got SIGTERM\\n"); process.exit(42); }); process.stdout.write("ready\\n"); setInterval(() => {}, 1000);';
    const run = runCli(['run', '--env', 'API_TOKEN=sv://prod/api/token', '--', process.execPath, '-e', script], { env: daemonEnv(world) });
    await waitForLine(defined(run.child.stdout ?? undefined, 'stdout'), 'ready');
    run.child.kill('SIGTERM');
    const result = await run;
    expect(result.code).toBe(42);
  });

  it('exits 128 + signal when the child is killed', async () => {
    const script = 'process.stdout.write("ready\\n"); setInterval(() => {}, 1000);';
    const run = runCli(['run', '--', process.execPath, '-e', script]);
    await waitForLine(defined(run.child.stdout ?? undefined, 'stdout'), 'ready');
    run.child.kill('SIGTERM');
    const result = await run;
    expect(result.code).toBe(128 + 15);
  });
});

describe('stillvault inject', () => {
  it('writes the output file with mode 0600', async () => {
    const template = join(scratch, 'config.tmpl');
    const output = join(scratch, 'config.out');
    writeFileSync(template, 'url: {{ sv://prod/inject }}\ntoken: {{sv://prod/api/token}}\n');
    const result = await runCli(['inject', '-i', template, '-o', output], { env: daemonEnv(world) });
    expect(result.code).toBe(0);
    expect(readFileSync(output, 'utf8')).toBe(`url: inject-value\ntoken: ${TOKEN}\n`);
    expect(statSync(output).mode & 0o777).toBe(0o600);
  });

  it('writes to stdout without -o', async () => {
    const template = join(scratch, 'stdout.tmpl');
    writeFileSync(template, 'a={{ sv://prod/inject }}');
    const result = await runCli(['inject', '-i', template], { env: daemonEnv(world) });
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toBe('a=inject-value');
  });
});

describe('daemon logs', () => {
  it('never contain a secret value', () => {
    const logs = daemon.logs() + world.broker.logs();
    for (const value of [TOKEN, 'inject-value']) expect(logs).not.toContain(value);
  });
});

async function waitForLine(stream: NodeJS.ReadableStream, text: string): Promise<void> {
  const lines = createInterface({ input: stream });
  for await (const line of lines) {
    if (line.includes(text)) return;
  }
  throw new Error(`stream ended before a line with ${JSON.stringify(text)}`);
}
