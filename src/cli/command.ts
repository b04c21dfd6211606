import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, USAGE_EXIT_CODE } from './errors.js';
import { closestMatch } from './suggest.js';

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
  /** Full help text for `--help`, listing every option; without it `--help` prints the usage line and the summary. */
  help?: string;
  run(argv: string[], io: CliIo): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Error codes of node:util parseArgs (Node.js 20) that parseCommandArgs rewords. */
const UNKNOWN_OPTION = 'ERR_PARSE_ARGS_UNKNOWN_OPTION';
const INVALID_OPTION_VALUE = 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE';
const UNEXPECTED_POSITIONAL = 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL';

/**
 * Parses a command's arguments strictly with node:util parseArgs. Its errors
 * become usage errors in plain words, such as `unknown option --formt`, with
 * the closest known option or the command's usage line as the hint. The
 * original error is kept as `cause`.
 */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, usage: string, allowPositionals = true) {
  const { args, restore } = shieldDashIds(argv, options);
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals, strict: true });
  } catch (error) {
    throw parseArgsError(error, options, usage);
  }
  parsed.positionals = parsed.positionals.map(restore);
  for (const [name, value] of Object.entries(parsed.values)) {
    if (typeof value === 'string') (parsed.values as Record<string, unknown>)[name] = restore(value);
    else if (Array.isArray(value)) (parsed.values as Record<string, unknown>)[name] = (value as unknown[]).map((item) => (typeof item === 'string' ? restore(item) : item));
  }
  return parsed;
}

// Ids are base64url of 16 bytes (22 characters), so one in 64 starts with '-'.
const DASH_ID = /^-[A-Za-z0-9_-]{21}$/;

/**
 * Replaces ids that start with '-' (before any `--`) by placeholders, so
 * parseArgs does not take `enrollments approve -VeYNF_Vop5HEAjE471FTg` for an
 * option. The placeholders contain a NUL byte, which no real argument can.
 */
function shieldDashIds(argv: string[], options: Options): { args: string[]; restore: (value: string) => string } {
  const shielded = new Map<string, string>();
  const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
  const args = argv.map((arg, index) => {
    if (index >= end || !DASH_ID.test(arg) || Object.hasOwn(options, arg.slice(2))) return arg;
    const placeholder = `\u0000id${shielded.size}`;
    shielded.set(placeholder, arg);
    return placeholder;
  });
  return { args, restore: (value) => shielded.get(value) ?? value };
}

/** Returns true when `error` was thrown by node:util parseArgs (its codes start with ERR_PARSE_ARGS_). */
export function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** Returns true when `error` came from parseCommandArgs for an option the command does not have. */
export function isUnknownOptionError(error: unknown): error is CliError {
  return (error as { cause?: { code?: unknown } }).cause?.code === UNKNOWN_OPTION;
}

/**
 * Turns an error of node:util parseArgs into a usage error in plain words.
 * `options` are the known options, used to suggest the closest one.
 */
export function parseArgsError(error: unknown, options: Options, usage: string): CliError {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : String(error);
  const quoted = /'([^']*)'/.exec(text)?.[1] ?? '';
  const usageHint = `usage: ${usage}`;
  const fail = (plain: string, hint = usageHint): CliError => new CliError('usage', plain, { hint, exitCode: USAGE_EXIT_CODE, cause: error });

  if (code === UNKNOWN_OPTION) {
    const known = Object.entries(options).flatMap(([name, config]) => [`--${name}`, ...(config.short === undefined ? [] : [`-${config.short}`])]);
    const suggestion = closestMatch(quoted, known);
    return fail(`unknown option ${quoted}`, suggestion === undefined ? usageHint : `did you mean ${suggestion}? ${usageHint}`);
  }
  if (code === INVALID_OPTION_VALUE) {
    const option = quoted.split(' ')[0] ?? quoted;
    return fail(text.includes('does not take an argument') ? `option ${option} takes no value` : `option ${option} needs a value`);
  }
  if (code === UNEXPECTED_POSITIONAL) return fail(`unexpected argument ${JSON.stringify(quoted)}: this command takes options only`);
  return fail(text);
}
