import type { Command } from '../command.js';
import { usageError } from '../errors.js';

export const brokerCommand: Command = {
  name: ['broker'],
  summary: 'run the broker: the relay that stores sealed objects and the audit log',
  usage: 'stillvault broker [--listen HOST:PORT] [--data DIR] [--database URL] [--allow-origin ORIGIN]',
  async run(argv, io) {
    // Loaded here so that other commands do not pay for the broker's modules.
    const { BROKER_HELP, parseBrokerArgs } = await import('../../broker/args.js');
    const { runBroker } = await import('../../broker/index.js');
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
