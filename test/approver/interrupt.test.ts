// Ctrl-C at the terminal approver's prompt: `stillvault approve` runs on a
// real pseudo-terminal (Python's pty module), so raw mode is on and Ctrl-C
// arrives as the byte 0x03 rather than as SIGINT.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, consumerFor, makeRequest, makeWorld, PASSPHRASE, type Consumer, type World } from '../admin/helpers.js';

const CLI = join(new URL('../../', import.meta.url).pathname, 'dist/cli/main.js');

/**
 * Runs the command on a pty, sends Ctrl-C once the prompt shows, and prints
 * one JSON line: the exit status, the output, and whether the terminal is
 * back in canonical mode with echo after the process exited.
 */
const PTY_DRIVER = String.raw`
import json, os, select, subprocess, sys, termios, time
master, slave = os.openpty()
child = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
output = b''
sent = False
deadline = time.time() + 30
while time.time() < deadline:
    ready, _, _ = select.select([master], [], [], 0.1)
    if ready:
        try:
            output += os.read(master, 4096)
        except OSError:
            break
    if not sent and b'Approve?' in output:
        time.sleep(0.2)
        os.write(master, b'\x03')
        sent = True
    if child.poll() is not None:
        break
code = child.wait(timeout=10)
lflag = termios.tcgetattr(slave)[3]
restored = bool(lflag & termios.ICANON) and bool(lflag & termios.ECHO)
print(json.dumps({'code': code, 'sent': sent, 'restored': restored, 'output': output.decode('utf-8', 'replace')}))
`;

interface PtyResult {
  code: number;
  sent: boolean;
  restored: boolean;
  output: string;
}

function approveOnPty(home: string): Promise<PtyResult> {
  const child = spawn('python3', ['-c', PTY_DRIVER, process.execPath, CLI, 'approve'], {
    env: { PATH: process.env.PATH ?? '', STILLVAULT_HOME: home, STILLVAULT_PASSPHRASE: PASSPHRASE },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
  return new Promise((resolve, reject) => {
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`pty driver exited with ${String(code)}: ${stdout}`));
      else resolve(JSON.parse(stdout) as PtyResult);
    });
  });
}

describe('Ctrl-C at the approve prompt', () => {
  let world: World;
  let consumer: Consumer;

  beforeAll(async () => {
    world = await makeWorld();
    consumer = await consumerFor(world);
  }, 120_000);

  afterAll(async () => {
    await world.broker.stop();
  });

  it('exits 130 and restores the terminal', async () => {
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    const result = await approveOnPty(world.approvers.ben ?? '');

    expect(result.sent).toBe(true);
    expect(result.code).toBe(130);
    expect(result.restored).toBe(true);
    expect(result.output).toContain('interrupted by Ctrl-C');
    expect(result.output).not.toContain('skipped');
    expect((await consumer.client.getRequest(made.signed.body.id)).state).toBe('pending');
    // Settles the request so a rerun of this file starts clean.
    await cli(world.approvers.ben ?? '', ['approve'], { input: 'n\n' });
  });
});
