import { terminalSafe } from '../approver/display.js';
import type { CliIo, Command } from './command.js';
import { CliError, USAGE_EXIT_CODE } from './errors.js';
import { loadCommands } from './commands/index.js';
import { closestMatch } from './suggest.js';

const VERSION = '0.1.0';

/** Runs one CLI invocation and returns the process exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    return printHelp(io, argv.length === 0 ? [] : argv.slice(1), argv.length === 0);
  }
  if (argv[0] === '--version' || argv[0] === 'version') {
    io.stdout.write(`stillvault ${VERSION}\n`);
    return 0;
  }
  const commands = await loadCommands(argv[0]);
  const match = findCommand(argv, commands);
  if (!match) return reportUnknownCommand(io, argv, commands);

  const rest = argv.slice(match.name.length);
  const helpFlag = rest.findIndex((arg) => arg === '--help' || arg === '-h' || arg === '--');
  if (helpFlag >= 0 && rest[helpFlag] !== '--') {
    io.stdout.write(commandHelp(match, commands));
    return 0;
  }
  try {
    return await match.run(rest, io);
  } catch (error) {
    return reportError(io, error);
  }
}

const isHelpFlag = (arg: string | undefined): boolean => arg === '--help' || arg === '-h';

/**
 * Handles a command line that names no command: a group word alone or with
 * --help lists the group's subcommands, anything else is an unknown command
 * with the closest known command as the hint.
 */
async function reportUnknownCommand(io: CliIo, argv: string[], group: Command[]): Promise<number> {
  const [first = '', second] = argv;
  if (group.length > 0 && (second === undefined || isHelpFlag(second))) {
    const help = groupHelp(first, group);
    if (second !== undefined) {
      io.stdout.write(help);
      return 0;
    }
    io.stderr.write(`stillvault: error: \`stillvault ${terminalSafe(first)}\` needs a subcommand\n\n${help}`);
    return USAGE_EXIT_CODE;
  }
  const typed = group.length > 0 ? argv.slice(0, 2) : argv.slice(0, 1);
  const suggestion = suggestCommand(argv, group.length > 0 ? group : await loadCommands());
  reportError(io, new CliError('usage', `unknown command "${typed.join(' ')}"`, {
    hint: suggestion === undefined ? 'run `stillvault help` to list the commands' : `did you mean \`stillvault ${suggestion}\`?`,
    exitCode: USAGE_EXIT_CODE,
  }));
  return USAGE_EXIT_CODE;
}

/**
 * Returns the command name closest to what was typed: the first word is
 * matched against the commands' first words, then, for a group, the second
 * word against its subcommands. Returns a group word alone when only the
 * first word is close.
 */
export function suggestCommand(argv: string[], commands: Command[]): string | undefined {
  const [first = '', second] = argv;
  const firstWords = new Set(commands.map((command) => command.name[0] ?? ''));
  const word = firstWords.has(first) ? first : closestMatch(first, firstWords);
  if (word === undefined) return undefined;
  const group = commands.filter((command) => command.name[0] === word);
  const subcommands = group.map((command) => command.name[1]).filter((name): name is string => name !== undefined);
  if (second === undefined || second.startsWith('-') || subcommands.length === 0) return word === first ? undefined : word;
  const sub = subcommands.includes(second) ? second : closestMatch(second, subcommands);
  if (sub === undefined) return word === first ? undefined : word;
  return `${word} ${sub}`;
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

/**
 * Prints help for `stillvault help [TOPIC...]`: every command, one group's
 * subcommands, or one command's usage and options. Bare `stillvault` lists
 * the commands with exit code 2.
 */
async function printHelp(io: CliIo, topic: string[], bare: boolean): Promise<number> {
  const all = await loadCommands();
  if (topic.length === 0) {
    io.stdout.write(helpText(all));
    return bare ? USAGE_EXIT_CODE : 0;
  }
  const command = all.find((candidate) => candidate.name.join(' ') === topic.join(' '));
  if (command !== undefined) {
    io.stdout.write(commandHelp(command, all));
    return 0;
  }
  const group = all.filter((candidate) => candidate.name[0] === topic[0]);
  if (topic.length === 1 && group.length > 0) {
    io.stdout.write(groupHelp(topic[0] ?? '', group));
    return 0;
  }
  const suggestion = suggestCommand(topic, all);
  return reportError(io, new CliError('usage', `no help for unknown command "${topic.join(' ')}"`, {
    hint: suggestion === undefined ? 'run `stillvault help` to list the commands' : `did you mean \`stillvault help ${suggestion}\`?`,
    exitCode: USAGE_EXIT_CODE,
  }));
}

function commandList(commands: Command[]): string[] {
  const width = Math.max(...commands.map((c) => c.name.join(' ').length));
  return commands.map((c) => `  ${c.name.join(' ').padEnd(width)}  ${c.summary}`);
}

/** Returns a command's full help, or its usage line and summary, followed by its subcommands if it has any. */
function commandHelp(command: Command, commands: Command[]): string {
  const text = command.help ?? `usage: ${command.usage}\n\n${command.summary}\n`;
  const subcommands = commands.filter((c) => c.name.length > command.name.length && command.name.every((word, i) => c.name[i] === word));
  if (subcommands.length === 0) return text;
  return `${text}\nsubcommands:\n${commandList(subcommands).join('\n')}\n`;
}

function groupHelp(word: string, group: Command[]): string {
  return [
    `usage: stillvault ${word} SUBCOMMAND [OPTIONS]`,
    '',
    'subcommands:',
    ...commandList(group),
    '',
    `Run \`stillvault ${word} SUBCOMMAND --help\` for a subcommand's options.`,
    '',
  ].join('\n');
}

function helpText(commands: Command[]): string {
  return [
    'stillvault: secrets for AI agents, released only when a named human approves.',
    '',
    'usage: stillvault COMMAND [OPTIONS]',
    '',
    'commands:',
    ...commandList(commands),
    '',
    'Run `stillvault COMMAND --help` for a command\'s options.',
    '',
  ].join('\n');
}
