import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { readPassphrase } from '../prompt.js';
import { ChildSet } from '../quickstart/children.js';
import { prepareDirectory, runDemo } from '../quickstart/demo.js';

const USAGE = 'stillvault quickstart [--dir DIR] [--web | --terminal]';
const DEFAULT_DIRECTORY = '.stillvault-demo';

/**
 * `stillvault quickstart`: the whole loop on one machine, each party a real
 * process with its own state folder. The approver is the terminal approver
 * (`--terminal`) or the web approver in a browser (`--web`); on a terminal
 * without either flag it asks which. On a terminal it asks for a demo
 * passphrase; otherwise it reads stdin: for the terminal approver two lines,
 * the decision (y or n) and then the passphrase, for the web approver one
 * line, the passphrase.
 */
export const quickstartCommand: Command = {
  name: ['quickstart'],
  summary: 'set up a demo org in a local folder and run one agent request through approval',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { dir: { type: 'string' }, web: { type: 'boolean' }, terminal: { type: 'boolean' } }, USAGE);
    if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`, `usage: ${USAGE}`);
    if (values.web === true && values.terminal === true) throw usageError('choose one of --web and --terminal', `usage: ${USAGE}`);
    const directory = path.resolve(values.dir ?? DEFAULT_DIRECTORY);
    let approver: 'terminal' | 'web';
    if (values.web === true) approver = 'web';
    else if (values.terminal === true) approver = 'terminal';
    else approver = await chooseApprover(io);
    const input = await readDemoInput(io, approver);
    await prepareDirectory(directory);
    io.stderr.write(`Demo state goes to ${directory} (delete it when done).\n`);

    const children = new ChildSet(cliEntry());
    const state = { interrupted: false };
    const abort = new AbortController();
    const onSignal = (): void => {
      state.interrupted = true;
      abort.abort();
      io.stderr.write('\nstillvault: interrupted; stopping every process the quickstart started\n');
      void children.stopAll();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const confirm = io.stdin.isTTY === true ? (question: string) => askYes(io, question) : undefined;
      const code = await runDemo(io, children, { directory, approver, confirm, signal: abort.signal, ...input });
      return state.interrupted ? 130 : code;
    } catch (error) {
      if (state.interrupted) return 130;
      throw error;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await children.stopAll();
    }
  },
};

function cliEntry(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'main.js');
}

/** On a terminal, asks which approver the demo uses; elsewhere the terminal approver, as before --web existed. */
async function chooseApprover(io: CliIo): Promise<'terminal' | 'web'> {
  if (io.stdin.isTTY !== true) return 'terminal';
  const answer = await askLine(io, 'Approve the demo request in this [t]erminal or in a [w]eb browser on this machine? [t] ');
  return answer.trim().toLowerCase().startsWith('w') ? 'web' : 'terminal';
}

async function askYes(io: CliIo, question: string): Promise<boolean> {
  return (await askLine(io, question)).trim().toLowerCase() === 'y';
}

async function askLine(io: CliIo, question: string): Promise<string> {
  const lines = createInterface({ input: io.stdin, output: io.stderr, terminal: true });
  try {
    return await lines.question(question);
  } finally {
    lines.close();
  }
}

async function readDemoInput(io: CliIo, approver: 'terminal' | 'web'): Promise<{ passphrase: string; scriptedDecision: 'y' | 'n' | undefined }> {
  if (io.stdin.isTTY === true) {
    io.stderr.write(approver === 'web'
      ? 'The demo encrypts the admin\'s and the daemon\'s keys under a passphrase you choose now.\n'
      : 'The demo encrypts its keys under a passphrase you choose now; the quickstart uses it again to unlock the approver\'s keys when you answer y.\n');
    const passphrase = await readPassphrase({ ...io, env: { ...io.env, STILLVAULT_PASSPHRASE: undefined } }, 'Demo passphrase: ', { confirm: true });
    return { passphrase, scriptedDecision: undefined };
  }
  const lines = (await readStdinText(io)).split(/\r?\n/);
  if (approver === 'web') {
    const firstLine = lines[0] ?? '';
    const passphrase = firstLine === '' ? io.env.STILLVAULT_PASSPHRASE ?? '' : firstLine;
    if (passphrase === '') {
      throw new CliError('passphrase_missing', 'stdin is not a terminal, so the web quickstart reads the demo passphrase from its first line, which is empty (and STILLVAULT_PASSPHRASE is not set)', {
        hint: "echo 'my demo passphrase' | npm run quickstart -- --web",
      });
    }
    return { passphrase, scriptedDecision: undefined };
  }
  const decision = lines[0]?.trim().toLowerCase();
  const passphrase = lines[1] ?? io.env.STILLVAULT_PASSPHRASE ?? '';
  if (decision !== 'y' && decision !== 'n') {
    throw new CliError('quickstart_input', 'stdin is not a terminal, so the quickstart reads two lines from it: the decision (y or n), then the passphrase', {
      hint: "printf 'y\\nmy demo passphrase\\n' | npm run quickstart",
    });
  }
  if (passphrase === '') throw new CliError('passphrase_missing', 'the second line of stdin (the demo passphrase) is empty');
  return { passphrase, scriptedDecision: decision };
}

async function readStdinText(io: CliIo): Promise<string> {
  let text = '';
  for await (const chunk of io.stdin as AsyncIterable<Buffer | string>) text += chunk.toString();
  return text;
}

