// The whole loop with real processes only: the enrolled daemon, an agent
// running `stillvault get`, and the terminal approver answering y.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, makeWorld, PASSPHRASE, tempHome, type World } from './helpers.js';

const CLI = join(process.cwd(), 'dist/cli/main.js');

function start(home: string, args: string[]): { child: ChildProcessWithoutNullStreams; output: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', STILLVAULT_HOME: home, STILLVAULT_PASSPHRASE: PASSPHRASE } });
  const output = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk: Buffer) => { output.stdout += chunk.toString('utf8'); });
  child.stderr.on('data', (chunk: Buffer) => { output.stderr += chunk.toString('utf8'); });
  return { child, output };
}

async function waitFor(check: () => boolean, what: string, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('real daemon, agent and terminal approver', () => {
  let world: World;
  let daemon: ReturnType<typeof start> | undefined;
  let socket: string;

  beforeAll(async () => {
    world = await makeWorld({ secret: 'value-from-the-vault' });
    socket = join(tempHome('socket'), 'daemon.sock');
    daemon = start(world.daemon, ['daemon', '--socket', socket]);
    const output = daemon.output;
    await waitFor(() => output.stderr.includes('"event":"broker-connected"'), 'the daemon', () => output.stderr);
  }, 120_000);

  afterAll(async () => {
    daemon?.child.kill('SIGTERM');
    await world.broker.stop();
  });

  it('get prints the value after approve y', async () => {
    const agent = start(world.daemon, ['get', 'prod/db-primary', '--socket', socket, '--reason', 'rotate the app password']);
    const exited = new Promise<number | null>((resolve) => agent.child.once('close', resolve));
    await waitFor(() => agent.output.stderr.includes('delivered') || agent.output.stderr.includes('waiting'), 'the request', () => agent.output.stderr);

    // The request reaches the broker asynchronously, so poll with `approve` until it has been decided.
    let approved = '';
    for (let attempt = 0; attempt < 20 && !approved.includes('approved'); attempt++) {
      approved += (await cli(world.approvers.ben ?? '', ['approve'], { input: 'y\n' })).stdout;
    }
    expect(approved).toContain('approved');

    expect(await exited).toBe(0);
    expect(agent.output.stdout).toBe('value-from-the-vault');
    expect(agent.output.stderr).toContain('approved by ben');
  });
});
