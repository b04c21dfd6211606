import { BROKER_HELP, parseBrokerArgs } from '../../broker/args.js';
import { runBroker } from '../../broker/index.js';
import type { Command } from '../command.js';
import { usageError } from '../errors.js';

export const brokerCommand: Command = {
  name: ['broker'],
  summary: 'run the broker: the relay that stores sealed objects and the audit log',
  usage: 'stillvault broker [--listen HOST:PORT] [--data DIR] [--database URL]',
  async run(argv, io) {
    let options;
    try {
      options = parseBrokerArgs(argv);
    } catch (error) {
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
