import { resolve } from 'node:path';
import { parseCommandArgs, type CliIo, type Command } from '../command.js';
import { CliError } from '../errors.js';
import { DEFAULT_BUNDLE_DIR } from '../../web/build.js';
import { brokerOrigin, startApproverServer } from '../../web/server.js';

const USAGE = 'stillvault approver serve [--listen HOST:PORT] [--broker URL] [--bundle DIR]';
const DEFAULT_LISTEN = 'localhost:8650';

/**
 * Serves the approver web app from this machine. The organisation, not a
 * managed broker, should serve it: whoever serves the app's code can change
 * it to leak what the approver unlocks.
 */
export const approverServeCommand: Command = {
  name: ['approver', 'serve'],
  summary: 'serve the approver web app (static files with a strict Content-Security-Policy)',
  usage: USAGE,
  async run(argv: string[], io: CliIo): Promise<number> {
    const { values } = parseCommandArgs(argv, {
      listen: { type: 'string' },
      broker: { type: 'string' },
      bundle: { type: 'string' },
    }, USAGE, false);
    if (values.broker !== undefined) {
      try {
        brokerOrigin(values.broker);
      } catch (error) {
        throw new CliError('usage', (error as Error).message, { hint: 'pass the broker URL the invites name, for example --broker https://broker.example.com', exitCode: 2 });
      }
    }
    const bundleDir = values.bundle === undefined ? DEFAULT_BUNDLE_DIR : resolve(values.bundle);
    let server;
    try {
      server = await startApproverServer({ bundleDir, listen: values.listen ?? DEFAULT_LISTEN, ...(values.broker === undefined ? {} : { broker: values.broker }) });
    } catch (error) {
      throw new CliError('serve_failed', (error as Error).message, { hint: 'build the bundle with `npm run build:web`, or pass --bundle DIR' });
    }
    io.stderr.write(`stillvault: approver web app at ${server.url}${values.broker === undefined ? ' (no --broker: the app may connect to its own origin only)' : ` for broker ${brokerOrigin(values.broker)}`}\n`);
    io.stdout.write(`${server.url}\n`);
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    await server.close();
    return 0;
  },
};
