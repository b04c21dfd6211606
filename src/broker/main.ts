import { BROKER_HELP, parseBrokerArgs } from './args.js';
import { runBroker } from './index.js';

/** Entry point: `node dist/broker/main.js [options]`, the same options as `stillvault broker`. */
async function main(): Promise<void> {
  const options = parseBrokerArgs(process.argv.slice(2));
  if (options === 'help') {
    process.stdout.write(BROKER_HELP);
    return;
  }
  await runBroker(options);
}

main().catch((error: unknown) => {
  process.stderr.write(`stillvault: error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
