import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { readPassphrase } from '../prompt.js';
import { ChildSet } from '../quickstart/children.js';
import { prepareDirectory, runDemo } from '../quickstart/demo.js';

const USAGE = 'stillvault quickstart [--dir DIR]';
const DEFAULT_DIRECTORY = '.stillvault-demo';

/**
 * `stillvault quickstart`: the whole loop on one machine, each party a real
 * process with its own state folder. On a terminal it asks for a demo
 * passphrase and lets you approve; otherwise it reads two lines from stdin,
 * the decision (y or n) and then the passphrase.
 */
export const quickstartCommand: Command = {
  name: ['quickstart'],
  summary: 'set up a demo org in a local folder and run one agent request through approval',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseCommandArgs(argv, { dir: { type: 'string' } }, USAGE);
    if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`, `usage: ${USAGE}`);
    const directory = path.resolve(values.dir ?? DEFAULT_DIRECTORY);
    const input = await readDemoInput(io);
    await prepareDirectory(directory);
    io.stderr.write(`Demo state goes to ${directory} (delete it when done).\n`);

    const children = new ChildSet(cliEntry());
    const state = { interrupted: false };
    const onSignal = (): void => {
      state.interrupted = true;
      io.stderr.write('\nstillvault: interrupted; stopping the broker, daemon and agent\n');
      void children.stopAll();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const code = await runDemo(io, children, { directory, ...input });
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

async function readDemoInput(io: CliIo): Promise<{ passphrase: string; scriptedDecision: 'y' | 'n' | undefined }> {
  if (io.stdin.isTTY === true) {
    io.stderr.write('The demo encrypts its keys under a passphrase you choose now; the approver asks for it again.\n');
    const passphrase = await readPassphrase({ ...io, env: { ...io.env, STILLVAULT_PASSPHRASE: undefined } }, 'Demo passphrase: ', { confirm: true });
    return { passphrase, scriptedDecision: undefined };
  }
  const lines = (await readStdinText(io)).split(/\r?\n/);
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

