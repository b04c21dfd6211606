import { CliError } from './errors.js';
import type { CliIo } from './command.js';

/**
 * Reads a passphrase: from STILLVAULT_PASSPHRASE when set (for scripts), else
 * from the terminal with echo off. Fails when neither is available rather
 * than reading a passphrase from a pipe that may also carry other input.
 */
export async function readPassphrase(io: CliIo, prompt: string, options: { confirm?: boolean } = {}): Promise<string> {
  const fromEnv = io.env.STILLVAULT_PASSPHRASE;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (!io.stdin.isTTY) {
    throw new CliError('passphrase_missing', 'no passphrase: stdin is not a terminal and STILLVAULT_PASSPHRASE is not set', {
      hint: 'set STILLVAULT_PASSPHRASE for scripted use, or run the command in a terminal',
    });
  }
  const first = await readHidden(io, prompt);
  if (options.confirm) {
    const second = await readHidden(io, 'Repeat the passphrase: ');
    if (first !== second) throw new CliError('passphrase_mismatch', 'the two passphrases differ');
  }
  if (first.length === 0) throw new CliError('passphrase_missing', 'the passphrase must not be empty');
  return first;
}

/** Reads one line from a TTY without echoing it. */
export function readHidden(io: CliIo, prompt: string): Promise<string> {
  const stdin = io.stdin;
  const setRawMode = (mode: boolean): void => {
    stdin.setRawMode?.(mode);
  };
  io.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const finish = (error?: Error): void => {
      setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      io.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string): void => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') {
          finish();
          return;
        }
        if (char === '\u0003') {
          finish(new CliError('interrupted', 'interrupted', { exitCode: 130 }));
          return;
        }
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    stdin.on('data', onData);
  });
}

/** Reads all of stdin as bytes (for secret values piped in). */
export async function readAllStdin(io: CliIo, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of io.stdin as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += buffer.length;
    if (total > maxBytes) {
      for (const part of chunks) part.fill(0);
      throw new CliError('value_too_large', `the value on stdin is larger than ${maxBytes} bytes`);
    }
    chunks.push(buffer);
  }
  const value = Buffer.concat(chunks);
  for (const part of chunks) part.fill(0);
  return value;
}
