import type { CliIo, Command } from '../command.js';
import { parseCommandArgs } from '../command.js';
import { CliError, usageError } from '../errors.js';
import { MAX_LEASE_SECONDS, parseDuration } from '../format.js';

/** Maximum time a request may wait for an approver: 15 minutes. */
const MAX_REQUEST_TIMEOUT_SECONDS = 900;

const USAGE = 'stillvault daemon [--socket PATH] [--broker URL] [--rules FILE] [--group NAME] [--lease DURATION] [--request-timeout DURATION]';

/** `stillvault daemon`: runs the consumer daemon in the foreground until SIGINT or SIGTERM. */
export const daemonRunCommand: Command = {
  name: ['daemon'],
  summary: 'run the consumer daemon that agents on this machine ask for secrets',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values, positionals } = parseCommandArgs(argv, {
      socket: { type: 'string' },
      broker: { type: 'string' },
      rules: { type: 'string' },
      group: { type: 'string' },
      lease: { type: 'string' },
      'request-timeout': { type: 'string' },
    }, USAGE);
    if (positionals.length > 0) {
      throw usageError(`unknown daemon subcommand "${positionals[0] ?? ''}"`, 'the daemon subcommands are invite, enroll, list and revoke; `stillvault daemon` alone runs the daemon');
    }

    // Loaded here so that commands which only talk to the daemon do not pay for pino, ws and the broker client.
    const { startDaemon, resolveGroup } = await import('../../daemon/daemon.js');
    let daemon;
    try {
      daemon = await startDaemon({
        env: io.env,
        ...(values.socket === undefined ? {} : { socketPath: values.socket }),
        ...(values.broker === undefined ? {} : { broker: values.broker }),
        ...(values.rules === undefined ? {} : { rulesFile: values.rules }),
        ...(values.group === undefined ? {} : { group: resolveGroup(values.group) }),
        ...(values.lease === undefined ? {} : { defaultLeaseSeconds: parseDuration(values.lease, '--lease', MAX_LEASE_SECONDS) }),
        ...(values['request-timeout'] === undefined ? {} : { requestLifetimeSeconds: parseDuration(values['request-timeout'], '--request-timeout', MAX_REQUEST_TIMEOUT_SECONDS) }),
      });
    } catch (error) {
      throw startFailure(error);
    }

    await waitForSignal();
    await daemon.close();
    return 0;
  },
};

/** Turns a DaemonError into a CliError, moving a `Hint:` sentence of its message to the hint line. */
function startFailure(error: unknown): unknown {
  const coded = error as { code?: unknown; message?: unknown };
  if (typeof coded.code !== 'string' || typeof coded.message !== 'string') return error;
  const [message, hint] = coded.message.split(' Hint: ');
  return new CliError(coded.code, `the daemon did not start: ${message ?? coded.message}`, {
    hint: hint ?? hintFor(coded.code),
    cause: error,
  });
}

function hintFor(code: string): string | undefined {
  switch (code) {
    case 'socket_in_use':
      return 'another daemon is running; stop it, or give this one another --socket';
    case 'addon_missing':
      return 'build the native addon with `npm run build:native`';
    case 'rules_invalid':
      return 'fix the rules file named above; docs/daemon-api.md describes its format';
    default:
      return undefined;
  }
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
