import { parseArgs } from 'node:util';
import { DEFAULT_DATA_DIR, DEFAULT_LISTEN, runBroker } from './index.js';

/** Entry point: `node dist/broker/main.js [--listen HOST:PORT] [--data DIR] [--database URL] [limits]`. */

const HELP = `usage: stillvault broker [options]
  --listen HOST:PORT        address to listen on (default ${DEFAULT_LISTEN}; port 0 picks a free port)
  --data DIR                broker key and SQLite database (default ${DEFAULT_DATA_DIR})
  --database URL            postgres://user@host:port/db[?schema=NAME] instead of SQLite
  --delivery-window SECONDS fail a request no approver received after this long (default 30)
  --max-pending N           pending requests per consumer (default 16)
  --rate-per-minute N       requests per consumer per minute (default 60)
`;

function positiveNumber(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string' },
      data: { type: 'string' },
      database: { type: 'string' },
      'delivery-window': { type: 'string' },
      'max-pending': { type: 'string' },
      'rate-per-minute': { type: 'string' },
      'sweep-interval-ms': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return;
  }
  const deliveryWindow = positiveNumber(values['delivery-window'], 'delivery-window');
  const limits = {
    ...(deliveryWindow === undefined ? {} : { deliveryWindowMs: Math.round(deliveryWindow * 1000) }),
    ...(values['max-pending'] === undefined ? {} : { maxPendingPerConsumer: positiveNumber(values['max-pending'], 'max-pending') }),
    ...(values['rate-per-minute'] === undefined ? {} : { requestsPerMinute: positiveNumber(values['rate-per-minute'], 'rate-per-minute') }),
    ...(values['sweep-interval-ms'] === undefined ? {} : { sweepIntervalMs: positiveNumber(values['sweep-interval-ms'], 'sweep-interval-ms') }),
  };
  await runBroker({
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values.data === undefined ? {} : { dataDir: values.data }),
    ...(values.database === undefined ? {} : { database: values.database }),
    limits,
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`stillvault: error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
