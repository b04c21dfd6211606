import { parseArgs, type ParseArgsConfig } from 'node:util';
import { usageError } from './errors.js';

/** Streams a command writes to: data on stdout, everything else on stderr. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** Words that select the command, for example ['approver', 'invite']. */
  name: string[];
  summary: string;
  usage: string;
  run(argv: string[], io: CliIo): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a command's arguments strictly with node:util parseArgs, turning its
 * errors into usage errors that show the command's usage line.
 */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, usage: string, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (error) {
    throw usageError((error as Error).message, `usage: ${usage}`);
  }
}
