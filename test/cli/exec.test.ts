import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/errors.js';
import { exitCodeOf, runChild } from '../../src/cli/exec.js';
import { bundleFixture } from '../daemon/helpers/bundle.js';
import { waitForExit } from '../daemon/helpers/process.js';

const NODE = process.execPath;
const BASE_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

let directory: string;

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), 'sv-exec-'));
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

/** Collects a stream's bytes. */
function capture(): { stream: PassThrough; bytes(): Buffer } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, bytes: () => Buffer.concat(chunks) };
}

async function rejection(promise: Promise<unknown>): Promise<CliError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CliError);
  return error as CliError;
}

describe('runChild', () => {
  it('returns the exit code', async () => {
    expect(await runChild(NODE, ['-e', 'process.exit(0)'], BASE_ENV)).toBe(0);
    expect(await runChild(NODE, ['-e', 'process.exit(7)'], BASE_ENV)).toBe(7);
  });

  it('maps a signal death to 128 + signal', async () => {
    expect(await runChild(NODE, ['-e', 'process.kill(process.pid, "SIGKILL")'], BASE_ENV)).toBe(137);
    expect(await runChild(NODE, ['-e', 'process.kill(process.pid, "SIGTERM")'], BASE_ENV)).toBe(143);
  });

  it('passes arguments without a shell', async () => {
    const out = capture();
    const args = ['$(echo no)', '; echo no', '*'];
    await runChild(NODE, ['-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', ...args], BASE_ENV, { stdout: out.stream });
    expect(JSON.parse(out.bytes().toString())).toEqual(args);
  });

  it('passes exactly the given environment', async () => {
    const out = capture();
    await runChild(NODE, ['-e', 'process.stdout.write(JSON.stringify(process.env))'], { ...BASE_ENV, TOKEN: 'value' }, { stdout: out.stream });
    const env = JSON.parse(out.bytes().toString()) as Record<string, string>;
    expect(env.TOKEN).toBe('value');
    expect(env.HOME).toBeUndefined();
  });

  it('reports a missing command with 127', async () => {
    const error = await rejection(runChild('stillvault-no-such-command', [], BASE_ENV));
    expect(error.code).toBe('command_not_found');
    expect(error.exitCode).toBe(127);
    expect(error.message).toBe('command not found: stillvault-no-such-command');
  });

  it('reports a missing command with masking', async () => {
    const error = await rejection(runChild('stillvault-no-such-command', [], BASE_ENV, { mask: [Buffer.from('secret')] }));
    expect(error.code).toBe('command_not_found');
  });

  it('reports a file without execute permission with 126', async () => {
    const script = join(directory, 'not-executable.sh');
    writeFileSync(script, '#!/bin/sh\nexit 0\n');
    chmodSync(script, 0o644);
    const error = await rejection(runChild(script, [], BASE_ENV));
    expect(error.code).toBe('command_not_executable');
    expect(error.exitCode).toBe(126);
  });

  it('rejects NUL without quoting the value', async () => {
    const error = await rejection(runChild(NODE, [], { ...BASE_ENV, TOKEN: 'hunter2\0rest' }));
    expect(error.code).toBe('invalid_environment');
    expect(error.message).toContain('TOKEN');
    expect(error.message).not.toContain('hunter2');
    expect((await rejection(runChild(NODE, ['a\0b'], BASE_ENV))).code).toBe('invalid_command');
    expect((await rejection(runChild(NODE, [], { 'A=hunter2': 'x' }))).message).not.toContain('hunter2');
  });

  it('masks split writes on stdout and stderr', async () => {
    const out = capture();
    const err = capture();
    const script = `
      process.stdout.write('token: hun');
      setTimeout(() => {
        process.stdout.write('ter2 end\\n');
        process.stderr.write('err hunter2\\n');
      }, 50);
    `;
    const code = await runChild(NODE, ['-e', script], BASE_ENV, { mask: [Buffer.from('hunter2')], stdout: out.stream, stderr: err.stream });
    expect(code).toBe(0);
    expect(out.bytes().toString()).toBe('token: *** end\n');
    expect(err.bytes().toString()).toBe('err ***\n');
  });

  it('keeps all output of a large write', async () => {
    const out = capture();
    const script = `process.stdout.write('x'.repeat(1 << 20) + 'secret-value' + 'y'.repeat(1 << 20))`;
    await runChild(NODE, ['-e', script], BASE_ENV, { mask: [Buffer.from('secret-value')], stdout: out.stream });
    const bytes = out.bytes();
    expect(bytes.length).toBe(2 * (1 << 20) + 3);
    expect(bytes.includes('secret-value')).toBe(false);
  });

  it('forwards SIGTERM to the child', async () => {
    // The runner is a separate process, so the signal never reaches this test worker.
    const fixture = await bundleFixture(join(import.meta.dirname, 'fixtures', 'run-child.ts'));
    try {
      const marker = join(directory, 'sigterm-marker');
      const childScript = `
        process.on('SIGTERM', () => {
          require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'got SIGTERM');
          process.exit(42);
        });
        process.stdout.write('ready\\n');
        setInterval(() => {}, 1000);
      `;
      const runner = spawn(NODE, [fixture.file, childScript], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => runner.stdout.once('data', () => {
        resolve();
      }));

      runner.kill('SIGTERM');
      const { code } = await waitForExit(runner);

      expect(code).toBe(42);
      expect(existsSync(marker)).toBe(true);
      expect(readFileSync(marker, 'utf8')).toBe('got SIGTERM');
    } finally {
      await fixture.remove();
    }
  });

  it('removes its signal handlers afterwards', async () => {
    const before = process.listenerCount('SIGTERM');
    await runChild(NODE, ['-e', ''], BASE_ENV);
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});

describe('exitCodeOf', () => {
  it('maps codes and signals', () => {
    expect(exitCodeOf(0, null)).toBe(0);
    expect(exitCodeOf(3, null)).toBe(3);
    expect(exitCodeOf(null, 'SIGINT')).toBe(130);
    expect(exitCodeOf(null, 'SIGHUP')).toBe(129);
    expect(exitCodeOf(null, null)).toBe(1);
  });
});
