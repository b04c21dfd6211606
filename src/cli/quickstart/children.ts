import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { CliError } from '../errors.js';

/**
 * The processes a quickstart starts, so that every exit path (success,
 * failure, Ctrl-C) stops all of them. Each child is a real `stillvault`
 * process with its own STILLVAULT_HOME, as it would be on separate machines.
 */
export class ChildSet {
  readonly #children = new Set<ChildProcess>();
  readonly #cliEntry: string;

  constructor(cliEntry: string) {
    this.#cliEntry = cliEntry;
  }

  /** Starts `stillvault ARGS` with the given environment. */
  spawnCli(args: string[], env: NodeJS.ProcessEnv, options: SpawnOptions = {}): ChildProcess {
    const child = spawn(process.execPath, [this.#cliEntry, ...args], { env, ...options });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /**
   * Runs `stillvault ARGS` to completion, writing `input` to its stdin, and
   * returns its stdout. A non-zero exit becomes a CliError that includes the
   * child's stderr, which never carries secret values.
   */
  async runCli(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<string> {
    const child = this.spawnCli(args, env, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin?.end(input);
    const code = await exitOf(child);
    if (code !== 0) {
      throw new CliError('quickstart_step_failed', `\`stillvault ${args.slice(0, 2).join(' ')}\` failed with exit code ${code}:\n${Buffer.concat(stderr).toString('utf8').trimEnd()}`);
    }
    return Buffer.concat(stdout).toString('utf8');
  }

  /** Sends SIGTERM to every child still running and waits until they exit (SIGKILL after 5 s). */
  async stopAll(): Promise<void> {
    const running = [...this.#children].filter((child) => child.exitCode === null && child.signalCode === null);
    await Promise.all(running.map(async (child) => {
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.kill('SIGTERM');
      await exitOf(child);
      clearTimeout(killTimer);
    }));
  }
}

/** Resolves with the child's exit code, or 128 + signal number when a signal ended it. */
export function exitOf(child: ChildProcess): Promise<number> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(code ?? 128 + (signal === null ? 0 : signalNumber(signal)));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}

/**
 * Waits until `stream` has printed a line for which `match` returns a value,
 * and resolves with that value. Rejects when the stream ends first or after
 * `timeoutMs`.
 */
export function waitForLine<T>(stream: NodeJS.ReadableStream, what: string, match: (line: string) => T | undefined, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    let pending = '';
    const finish = (error: Error | undefined, value?: T): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      if (error) reject(error);
      else resolve(value as T);
    };
    const onData = (chunk: Buffer | string): void => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const value = match(line);
        if (value !== undefined) {
          finish(undefined, value);
          return;
        }
      }
    };
    const onEnd = (): void => {
      finish(new CliError('quickstart_step_failed', `${what}: the process ended before it was ready`));
    };
    const timer = setTimeout(() => {
      finish(new CliError('quickstart_step_failed', `${what}: not ready after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    stream.on('data', onData);
    stream.once('end', onEnd);
  });
}
