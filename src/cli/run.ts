import { terminalSafe } from '../approver/display.js';
import type { CliIo, Command } from './command.js';
import { CliError, USAGE_EXIT_CODE } from './errors.js';
import { loadCommands } from './commands/index.js';

const VERSION = '0.1.0';

/** Runs one CLI invocation and returns the process exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    io.stdout.write(helpText(argv.slice(1), await loadCommands()));
    return argv.length === 0 ? USAGE_EXIT_CODE : 0;
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    io.stdout.write(`stillvault ${VERSION}\n`);
    return 0;
  }
  const match = findCommand(argv, await loadCommands(argv[0]));
  if (!match) {
    reportError(io, new CliError('usage', `unknown command "${argv.slice(0, 2).join(' ')}"`, {
      hint: 'run `stillvault help` to list the commands',
      exitCode: USAGE_EXIT_CODE,
    }));
    return USAGE_EXIT_CODE;
  }
  const rest = argv.slice(match.name.length);
  if (rest.includes('--help') && !rest.slice(0, rest.indexOf('--help')).includes('--')) {
    io.stdout.write(`usage: ${match.usage}\n\n${match.summary}\n`);
    return 0;
  }
  try {
    return await match.run(rest, io);
  } catch (error) {
    return reportError(io, error);
  }
}

function findCommand(argv: string[], commands: Command[]): Command | undefined {
  const candidates = commands.filter((command) => command.name.every((word, i) => argv[i] === word));
  return candidates.sort((a, b) => b.name.length - a.name.length)[0];
}

/**
 * Prints an error the age way: `stillvault: error: ...` and a hint line.
 * Returns the exit code. Messages can carry broker or daemon text, so control
 * characters are escaped before they reach the terminal.
 */
export function reportError(io: CliIo, error: unknown): number {
  if (error instanceof CliError) {
    io.stderr.write(`stillvault: error: ${terminalSafe(error.message)}\n`);
    if (error.hint) io.stderr.write(`hint: ${error.hint}\n`);
    return error.exitCode;
  }
  const coded = error as { code?: unknown; message?: unknown };
  const code = typeof coded.code === 'string' ? ` (${coded.code})` : '';
  const message = typeof coded.message === 'string' ? coded.message : String(error);
  io.stderr.write(`stillvault: error: ${terminalSafe(`${message}${code}`)}\n`);
  return 1;
}

function helpText(topic: string[], all: Command[]): string {
  const commands = topic.length > 0 ? all.filter((c) => topic.every((word, i) => c.name[i] === word)) : all;
  const width = Math.max(...commands.map((c) => c.name.join(' ').length));
  const lines = commands.map((c) => `  ${c.name.join(' ').padEnd(width)}  ${c.summary}`);
  return [
    'stillvault: secrets for AI agents, released only when a named human approves.',
    '',
    'usage: stillvault COMMAND [OPTIONS]',
    '',
    'commands:',
    ...lines,
    '',
    'Run `stillvault COMMAND --help` for a command\'s options.',
    '',
  ].join('\n');
}
