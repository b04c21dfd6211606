import { isParseArgsError, parseArgsError, type Command } from '../command.js';
import { usageError } from '../errors.js';
import { BROKER_HELP } from '../../broker/help.js';

const USAGE = 'stillvault broker [--listen HOST:PORT] [--data DIR] [--database URL] [--allow-origin ORIGIN]...';

/** The options BROKER_HELP lists, so that a mistyped option gets the closest one as a hint. */
const LISTED_OPTIONS = Object.fromEntries([...BROKER_HELP.matchAll(/^ {2}--([a-z-]+)/gm)].map((match) => [match[1] ?? '', { type: 'string' as const }]));

export const brokerCommand: Command = {
  name: ['broker'],
  summary: 'run the broker: the relay that stores sealed objects and the audit log',
  usage: USAGE,
  help: BROKER_HELP,
  async run(argv, io) {
    // Loaded here so that other commands do not pay for the broker's modules.
    const { parseBrokerArgs } = await import('../../broker/args.js');
    const { runBroker } = await import('../../broker/index.js');
    let options;
    try {
      options = parseBrokerArgs(argv);
    } catch (error) {
      if (isParseArgsError(error)) throw parseArgsError(error, LISTED_OPTIONS, `${USAGE}; run \`stillvault broker --help\` for every option`);
      throw usageError((error as Error).message, 'run `stillvault broker --help` for the options');
    }
    if (options === 'help') {
      io.stdout.write(BROKER_HELP);
      return 0;
    }
    await runBroker(options);
    return 0;
  },
};
