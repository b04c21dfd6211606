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

/**
 * Input read past the end of a line, per stdin stream: a paste such as
 * `pp1\npp1\n` arrives as one chunk, and the second line belongs to the
 * next readHidden call. `afterCarriageReturn` is set when the last line
 * ended in \r, so a \n that follows it does not end an empty line.
 */
interface PendingInput {
  text: string;
  afterCarriageReturn: boolean;
}

const pendingInput = new WeakMap<object, PendingInput>();

/**
 * Reads one line from a TTY without echoing it. Characters after the line
 * end are kept for the next call on the same stream.
 */
export function readHidden(io: CliIo, prompt: string): Promise<string> {
  const stdin = io.stdin;
  const pending = pendingInput.get(stdin) ?? { text: '', afterCarriageReturn: false };
  pendingInput.set(stdin, pending);
  const setRawMode = (mode: boolean): void => {
    stdin.setRawMode?.(mode);
  };
  io.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (error?: Error): void => {
      setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      io.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    /** Consumes characters until a line ends and keeps the rest of `chunk` for the next call. Returns true when the line ended. */
    const consume = (chunk: string): boolean => {
      let offset = 0;
      for (const char of chunk) {
        offset += char.length;
        if (char === '\n' && pending.afterCarriageReturn) {
          pending.afterCarriageReturn = false;
          continue;
        }
        pending.afterCarriageReturn = false;
        if (char === '\r' || char === '\n') {
          pending.afterCarriageReturn = char === '\r';
          pending.text = chunk.slice(offset);
          finish();
          return true;
        }
        if (char === '\u0003') {
          pending.text = '';
          finish(new CliError('interrupted', 'interrupted', { exitCode: 130 }));
          return true;
        }
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
      return false;
    };
    const onData = (chunk: string): void => {
      consume(chunk);
    };

    const leftover = pending.text;
    pending.text = '';
    if (consume(leftover)) return;
    setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
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
