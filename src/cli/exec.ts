import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CliError } from './errors.js';
import { MaskStream } from './mask.js';

/** Signals that runChild passes on to the child while it runs. */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Shell conventions for a command that cannot be started. */
export const EXIT_COMMAND_NOT_FOUND = 127;
export const EXIT_COMMAND_NOT_EXECUTABLE = 126;

export interface RunChildOptions {
  /** Secret values to mask in the child's stdout and stderr (see MaskStream). */
  mask?: readonly Buffer[];
  /** Destination of the child's stdout; this process's stdout when omitted. */
  stdout?: Writable;
  /** Destination of the child's stderr; this process's stderr when omitted. */
  stderr?: Writable;
}

/**
 * Runs `command` with `args` directly (no shell) and exactly the environment
 * `env`, and resolves with its exit code, or 128 + the signal number when a
 * signal killed it. stdin is inherited. stdout and stderr are inherited, or
 * piped through a MaskStream when `mask` is given, or into the given streams.
 *
 * SIGINT, SIGTERM and SIGHUP sent to this process are forwarded to the child.
 * A Ctrl-C in a terminal reaches the child directly too (it shares the
 * foreground process group), so the child may see SIGINT twice.
 *
 * Throws CliError 'command_not_found' (exit code 127), 'command_not_executable'
 * (126) or 'invalid_environment' before anything runs.
 */
export async function runChild(command: string, args: readonly string[], env: Readonly<Record<string, string>>, options: RunChildOptions = {}): Promise<number> {
  checkNoNul(command, args, env);
  const pipeStdout = options.mask !== undefined || options.stdout !== undefined;
  const pipeStderr = options.mask !== undefined || options.stderr !== undefined;

  const child = spawn(command, args, {
    env: { ...env },
    shell: false,
    stdio: ['inherit', pipeStdout ? 'pipe' : 'inherit', pipeStderr ? 'pipe' : 'inherit'],
  });
  const removeForwarding = forwardSignals(child);
  const exit = waitForExit(child, command);
  const outputs = Promise.all([
    pipeStdout ? relay(child.stdout, options.stdout ?? process.stdout, options.mask) : undefined,
    pipeStderr ? relay(child.stderr, options.stderr ?? process.stderr, options.mask) : undefined,
  ]);
  try {
    const exitCode = await exit;
    await outputs;
    return exitCode;
  } catch (error) {
    // A child that never started closes its pipes early; that error adds nothing.
    outputs.catch(() => undefined);
    throw error;
  } finally {
    removeForwarding();
  }
}

/** Resolves when the child has exited and closed its stdio; rejects when it could not start. */
function waitForExit(child: ChildProcess, command: string): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      reject(startError(error, command));
    });
    child.once('close', (code, signal) => {
      resolve(exitCodeOf(code, signal));
    });
  });
}

/** Copies a child's output to `destination`, masked when `mask` is given, without ending `destination`. */
async function relay(source: Readable | null, destination: Writable, mask: readonly Buffer[] | undefined): Promise<void> {
  if (source === null) return;
  if (mask === undefined) {
    await pipeline(source, destination, { end: false });
  } else {
    await pipeline(source, new MaskStream(mask), destination, { end: false });
  }
}

function forwardSignals(child: ChildProcess): () => void {
  const forward = (signal: NodeJS.Signals) => {
    // kill() returns false once the child has exited; nothing is left to forward to then.
    child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  return () => {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
  };
}

/** Maps a terminated child to a shell-style exit code. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal === null ? undefined : constants.signals[signal];
  // Neither a code nor a known signal should not happen; report a generic failure.
  return number === undefined ? 1 : 128 + number;
}

function startError(error: Error, command: string): CliError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return new CliError('command_not_found', `command not found: ${command}`, {
      hint: 'check the spelling, or give the full path; PATH is searched as set in the environment passed to the command',
      exitCode: EXIT_COMMAND_NOT_FOUND,
      cause: error,
    });
  }
  if (code === 'EACCES') {
    return new CliError('command_not_executable', `command is not executable: ${command}`, {
      hint: `check the file's execute permission (chmod +x ${command})`,
      exitCode: EXIT_COMMAND_NOT_EXECUTABLE,
      cause: error,
    });
  }
  return new CliError('command_failed_to_start', `starting ${command} failed: ${error.message}`, { exitCode: EXIT_COMMAND_NOT_EXECUTABLE, cause: error });
}

/**
 * Rejects NUL characters, which no argument or environment variable can hold.
 * Node.js would reject them too, but its message quotes the value.
 */
function checkNoNul(command: string, args: readonly string[], env: Readonly<Record<string, string>>): void {
  if (command.includes('\0') || command === '') {
    throw new CliError('invalid_command', 'the command is empty or contains a NUL character');
  }
  args.forEach((arg, index) => {
    if (arg.includes('\0')) throw new CliError('invalid_command', `argument ${index + 1} contains a NUL character`);
  });
  for (const [name, value] of Object.entries(env)) {
    if (name === '' || name.includes('=') || name.includes('\0')) {
      // Quote only the part before '=' or NUL: a name built by mistake from NAME=VALUE would hold the value.
      const prefix = name.split(/[=\0]/)[0] ?? '';
      throw new CliError('invalid_environment', `invalid environment variable name starting with ${JSON.stringify(prefix)}: it is empty or contains "=" or NUL`);
    }
    if (value.includes('\0')) {
      throw new CliError('invalid_environment', `the value of ${name} contains a NUL character, which an environment variable cannot hold`);
    }
  }
}
