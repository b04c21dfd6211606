import { isUtf8 } from 'node:buffer';
import type { CliIo, Command } from '../command.js';
import { isUnknownOptionError, parseCommandArgs } from '../command.js';
import { daemonSocketPath, printProgress, requestSecrets } from '../daemon-client.js';
import { parseLeaseOption } from '../format.js';
import { readEnvFile } from '../envfile.js';
import { CliError, USAGE_EXIT_CODE, usageError } from '../errors.js';
import { runChild } from '../exec.js';
import { parseSecretRef } from '../refs.js';

const USAGE = 'stillvault run [--env NAME=sv://PATH]... [--env-file FILE]... [--reason TEXT] [--no-masking] [--lease DURATION] [--socket PATH] -- CMD [ARGS...]';
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One variable of the child's environment, with where it was set for error messages. */
interface EnvValue {
  value: string;
  source: string;
}

/**
 * `stillvault run -- CMD`: resolves every `sv://PATH` reference in the
 * environment, in --env-file files and in --env options with one daemon
 * call, then runs CMD directly (no shell) with the values in its
 * environment. If any reference fails, CMD is not started.
 */
export const runCommand: Command = {
  name: ['run'],
  summary: 'run a command with sv:// references in its environment replaced by approved secrets',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const separator = argv.indexOf('--');
    const optionArgs = separator < 0 ? argv : argv.slice(0, separator);
    const { values, positionals } = parseRunOptions(optionArgs, separator >= 0);
    const commandLine = separator < 0 ? positionals : [...positionals, ...argv.slice(separator + 1)];
    const [command, ...args] = commandLine;
    if (command === undefined) throw usageError('no command given', `usage: ${USAGE}`);
    const leaseSeconds = parseLeaseOption(values.lease);

    const env = await collectEnvironment(io.env, values['env-file'] ?? [], values.env ?? []);
    const refs = findReferences(env);
    const childEnv: Record<string, string> = {};
    for (const [name, entry] of env) childEnv[name] = entry.value;
    if (refs.size === 0) return runChild(command, args, childEnv);

    const secrets = await resolve(io, refs, { reason: values.reason ?? '', leaseSeconds, socket: values.socket });
    try {
      for (const [name, path] of refs) childEnv[name] = valueFor(name, secrets.get(path));
      const mask = values['no-masking'] === true ? undefined : [...secrets.values()];
      return await runChild(command, args, childEnv, mask === undefined ? {} : { mask });
    } finally {
      for (const value of secrets.values()) value.fill(0);
    }
  },
};

/**
 * Parses run's own options. Without `--`, an option meant for CMD (such as
 * node's -e) reaches this parser, so the error says to put `--` first.
 */
function parseRunOptions(optionArgs: string[], hasSeparator: boolean) {
  try {
    return parseCommandArgs(optionArgs, {
      env: { type: 'string', multiple: true },
      'env-file': { type: 'string', multiple: true },
      reason: { type: 'string' },
      'no-masking': { type: 'boolean' },
      lease: { type: 'string' },
      socket: { type: 'string' },
    }, USAGE);
  } catch (error) {
    if (hasSeparator || !isUnknownOptionError(error)) throw error;
    throw new CliError('usage', `${error.message}: if it is an option of the command to run, put -- before the command`, {
      hint: 'stillvault run [OPTIONS] -- CMD [ARGS...], for example: stillvault run --env TOKEN=sv://prod/token -- node -e "..."',
      exitCode: USAGE_EXIT_CODE,
      cause: error,
    });
  }
}

/** Builds the environment: this process's variables, then each env file in order, then --env options; later wins. */
async function collectEnvironment(processEnv: NodeJS.ProcessEnv, envFiles: string[], options: string[]): Promise<Map<string, EnvValue>> {
  const env = new Map<string, EnvValue>();
  for (const [name, value] of Object.entries(processEnv)) {
    if (value !== undefined) env.set(name, { value, source: 'the environment' });
  }
  for (const file of envFiles) {
    for (const entry of await readEnvFile(file)) env.set(entry.name, { value: entry.value, source: `${file}:${entry.line}` });
  }
  for (const option of options) {
    const equals = option.indexOf('=');
    const name = equals < 0 ? option : option.slice(0, equals);
    if (equals < 0 || !VARIABLE_NAME.test(name)) {
      throw usageError(`--env expects NAME=VALUE with a variable name of letters, digits and _, got ${JSON.stringify(name)}`);
    }
    env.set(name, { value: option.slice(equals + 1), source: '--env' });
  }
  return env;
}

/** Returns variable name → secret path for every value that is exactly `sv://PATH`. */
function findReferences(env: Map<string, EnvValue>): Map<string, string> {
  const refs = new Map<string, string>();
  for (const [name, entry] of env) {
    let path: string | null;
    try {
      path = parseSecretRef(entry.value);
    } catch (error) {
      const cause = error as CliError;
      // A bad reference in an --env option is an invalid option value, so usage exit code 2.
      throw new CliError(cause.code, `${name} (set in ${entry.source}): ${cause.message}`, {
        ...(cause.hint === undefined ? {} : { hint: cause.hint }),
        exitCode: entry.source === '--env' ? USAGE_EXIT_CODE : cause.exitCode,
        cause,
      });
    }
    if (path !== null) refs.set(name, path);
  }
  return refs;
}

/** Asks the daemon for every referenced path in one call; a failure names the variables it leaves unresolved. */
async function resolve(io: CliIo, refs: Map<string, string>, options: { reason: string; leaseSeconds: number | undefined; socket: string | undefined }): Promise<Map<string, Buffer>> {
  const paths = [...new Set(refs.values())];
  try {
    return await requestSecrets(
      daemonSocketPath(io.env, options.socket),
      { paths, reason: options.reason, ...(options.leaseSeconds === undefined ? {} : { leaseSeconds: options.leaseSeconds }) },
      (event) => { printProgress(io, event); },
    );
  } catch (error) {
    if (!(error instanceof CliError)) throw error;
    const names = [...refs].map(([name, path]) => `${name} (sv://${path})`).join(', ');
    throw new CliError(error.code, `resolving ${names} failed, so the command was not started: ${error.message}`, {
      exitCode: error.exitCode,
      ...(error.hint === undefined ? {} : { hint: error.hint }),
      cause: error,
    });
  }
}

function valueFor(name: string, value: Buffer | undefined): string {
  if (value === undefined) throw new CliError('secret_ref_unresolved', `the daemon returned no value for ${name}`);
  if (!isUtf8(value)) {
    throw new CliError('value_not_utf8', `the value for ${name} is not valid UTF-8, so it cannot be passed as an environment variable unchanged`, {
      hint: 'use `stillvault inject` or `stillvault get --format json` for binary secrets',
    });
  }
  // NOTE: environment values are JavaScript strings, which cannot be wiped.
  return value.toString('utf8');
}
