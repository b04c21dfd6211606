import { createInterface } from 'node:readline';
import { BrokerClient } from '../../broker/client.js';
import { ApproverEngine, type ApproverFrontEnd, type Decision, type Outcome } from '../../approver/engine.js';
import { ApproverError } from '../../approver/errors.js';
import { formatLease, terminalSafe } from '../../approver/display.js';
import { unlockDeviceKeys, type DeviceKeys } from '../../approver/keys.js';
import { approverPaths, loadApproverState } from '../../approver/state.js';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError } from '../errors.js';
import { parseFormat, type OutputFormat } from '../format.js';
import { readPassphrase } from '../prompt.js';

const USAGE = 'stillvault approve [--watch] [--format table|json]';

/** Exit code when at least one request failed verification and was refused. */
export const REFUSED_EXIT_CODE = 3;

/** Exit code after Ctrl-C: 128 + SIGINT, as shells report a process that SIGINT ended. */
export const INTERRUPTED_EXIT_CODE = 130;

/** Decisions by keystroke. */
const KEY_DECISIONS: Partial<Record<string, Decision>> = { y: 'approve', n: 'deny', s: 'skip', q: 'quit' };
/** Ctrl-C as raw mode delivers it: the terminal sends no SIGINT while raw mode is on. */
const CTRL_C = '\u0003';

/**
 * Reads one keystroke from a terminal: y approves, n denies, s skips, q
 * quits. Ctrl-C rejects with a CliError of exit code 130, so the command
 * unwinds through its finally blocks and the entry point sets the exit code.
 */
function readKey(io: CliIo): Promise<Decision> {
  const stdin = io.stdin;
  io.stderr.write('Approve? [y]es / [n]o / [s]kip / [q]uit: ');
  return new Promise((resolve, reject) => {
    stdin.setRawMode?.(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const restore = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
    };
    const onData = (chunk: string): void => {
      if (chunk.includes(CTRL_C)) {
        restore();
        io.stderr.write('^C\n');
        reject(new CliError('interrupted', 'interrupted by Ctrl-C; no decision was sent', { exitCode: INTERRUPTED_EXIT_CODE }));
        return;
      }
      const decision = KEY_DECISIONS[chunk.toLowerCase()];
      if (decision === undefined) return;
      restore();
      io.stderr.write(`${decision}\n`);
      resolve(decision);
    };
    stdin.on('data', onData);
  });
}

/** Reads decisions one per line from a pipe: y or yes approves, n or no denies, s skips; end of input quits. */
function lineDecisions(io: CliIo): () => Promise<Decision> {
  const lines = createInterface({ input: io.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
  return async () => {
    for (;;) {
      const next = await lines.next();
      if (next.done === true) return 'quit';
      const answer = next.value.trim().toLowerCase();
      if (answer === 'y' || answer === 'yes') return 'approve';
      if (answer === 'n' || answer === 'no') return 'deny';
      if (answer === 's' || answer === 'skip') return 'skip';
      if (answer !== '') io.stderr.write(`invalid decision line ${JSON.stringify(answer)} ignored: expected y, n or s\n`);
    }
  };
}

/** Unlocks the device keys; on a terminal a mistyped passphrase may be typed again, at most three times in all. */
async function unlockWithRetries(io: CliIo, file: string): Promise<DeviceKeys> {
  const attempts = io.stdin.isTTY === true && io.env.STILLVAULT_PASSPHRASE === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await unlockDeviceKeys(file, await readPassphrase(io, 'Passphrase for this approver\'s keys: '));
    } catch (error) {
      if (!(error instanceof ApproverError && error.code === 'wrong_passphrase') || attempt >= attempts) throw error;
      io.stderr.write('Wrong passphrase, try again.\n');
    }
  }
}

/**
 * Writes one outcome. Request ids, codes and messages of refused or settled
 * requests come from the broker unverified, so table output escapes them
 * like every other field shown on the terminal.
 */
function writeOutcome(io: CliIo, format: OutputFormat, outcome: Outcome): void {
  if (format === 'json') {
    io.stdout.write(`${JSON.stringify(outcome)}\n`);
    return;
  }
  const request = terminalSafe(outcome.request);
  const code = terminalSafe(outcome.code ?? '');
  const paths = terminalSafe(outcome.paths?.join(',') ?? '');
  switch (outcome.result) {
    case 'approved':
      io.stdout.write(`approved ${request} ${paths} lease ${formatLease(outcome.leaseSeconds ?? 0)}\n`);
      break;
    case 'denied':
      io.stdout.write(`denied ${request} ${paths}\n`);
      break;
    case 'refused':
      io.stdout.write(`refused ${request} ${code}\n`);
      io.stderr.write(`stillvault: rejected request ${request}, verification failed: ${terminalSafe(outcome.message ?? '')} (${code})\n`);
      break;
    default:
      io.stdout.write(`${outcome.result} ${request}${outcome.code === undefined ? '' : ` ${code}`}\n`);
  }
}

/** Escapes each line of `text` for the terminal, keeping its line breaks. */
function terminalSafeLines(text: string): string {
  return text.split('\n').map(terminalSafe).join('\n');
}

async function run(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, { watch: { type: 'boolean' }, format: { type: 'string' } }, USAGE, false);
  const format = parseFormat(values.format);
  const paths = approverPaths(io.env);
  const state = await loadApproverState(paths);
  if (state?.certificate == null) {
    throw new CliError('not_enrolled', state === undefined ? 'this machine is not an approver' : 'this approver\'s enrollment is not complete', {
      hint: state === undefined ? 'run `stillvault approver enroll --invite TOKEN`' : 'run `stillvault approver status --wait` after the admin approved it',
    });
  }

  const decide = io.stdin.isTTY === true ? () => readKey(io) : lineDecisions(io);
  const frontEnd: ApproverFrontEnd = {
    // The engine shows broker error text too, so every line is escaped here, at the terminal.
    show: (text) => { io.stderr.write(`${terminalSafeLines(text)}\n`); },
    decide: () => decide(),
    unlockKeys: () => unlockWithRetries(io, paths.keys),
    report: (outcome) => { writeOutcome(io, format, outcome); },
  };
  const engine = new ApproverEngine(paths, state, new BrokerClient(state.broker, state.org), frontEnd);
  try {
    await engine.start();
  } catch (error) {
    if (error instanceof ApproverError && error.code === 'wrong_passphrase') {
      throw new CliError(error.code, `cannot unlock this approver's keys: ${error.message}`, {
        hint: 'check the passphrase (or STILLVAULT_PASSPHRASE)',
      });
    }
    if (error instanceof ApproverError || (error as { code?: unknown }).code === 'revoked' || (error as { code?: unknown }).code === 'expired') {
      throw new CliError((error as { code: string }).code, `cannot act as approver: ${(error as Error).message}`, {
        hint: 'ask the admin to check this device\'s certificate (`stillvault approver list`)',
      });
    }
    throw error;
  }

  if (values.watch === true) {
    io.stderr.write('Watching for requests; press q at a prompt or Ctrl-C to stop.\n');
    await engine.watch();
  } else if ((await engine.handlePending()) === 0) {
    io.stderr.write('No pending requests for this approver.\n');
  }
  return engine.refusals > 0 ? REFUSED_EXIT_CODE : 0;
}

export const approveCommand: Command = {
  name: ['approve'],
  summary: 'decide pending requests as this terminal approver (--watch keeps waiting for more)',
  usage: USAGE,
  run,
};
