import { parseArgs } from 'node:util';
import { DEFAULT_DATA_DIR, DEFAULT_LISTEN, type BrokerOptions } from './index.js';

/** Command-line options of `stillvault broker`, shared by the CLI and `node dist/broker/main.js`. */
export const BROKER_HELP = `usage: stillvault broker [options]
  --listen HOST:PORT        address to listen on (default ${DEFAULT_LISTEN}; port 0 picks a free port)
  --data DIR                broker key and SQLite database (default ${DEFAULT_DATA_DIR})
  --database URL            postgres://user@host:port/db[?schema=NAME] instead of SQLite
  --delivery-window SECONDS fail a request no approver received after this long (default 30)
  --max-pending N           pending requests per consumer (default 16)
  --rate-per-minute N       requests per consumer per minute (default 60)
  --allow-origin ORIGIN     answer CORS for this web origin, e.g. the approver web app's (repeatable; default none)
  --allow-http-push-endpoints  accept http:// Web Push endpoints, not only https:// (for tests with a local push service)
`;

function positiveNumber(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

/** Checks that an --allow-origin value is exactly an origin: scheme, host and optional port, no path. */
function parseOrigin(text: string): string {
  let origin: string;
  try {
    origin = new URL(text).origin;
  } catch {
    origin = 'null';
  }
  if (origin === 'null' || origin !== text.replace(/\/$/, '')) throw new Error(`--allow-origin must be an origin such as https://approver.example.com, got ${JSON.stringify(text)}`);
  return origin;
}

/** Parses broker options; returns 'help' when --help was given. Throws on invalid values. */
export function parseBrokerArgs(argv: string[]): BrokerOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      data: { type: 'string' },
      database: { type: 'string' },
      'delivery-window': { type: 'string' },
      'max-pending': { type: 'string' },
      'rate-per-minute': { type: 'string' },
      'sweep-interval-ms': { type: 'string' },
      'allow-origin': { type: 'string', multiple: true },
      'allow-http-push-endpoints': { type: 'boolean' },
      'push-retry-base-ms': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) return 'help';
  const deliveryWindow = positiveNumber(values['delivery-window'], 'delivery-window');
  const limits = {
    ...(deliveryWindow === undefined ? {} : { deliveryWindowMs: Math.round(deliveryWindow * 1000) }),
    ...(values['max-pending'] === undefined ? {} : { maxPendingPerConsumer: positiveNumber(values['max-pending'], 'max-pending') }),
    ...(values['rate-per-minute'] === undefined ? {} : { requestsPerMinute: positiveNumber(values['rate-per-minute'], 'rate-per-minute') }),
    ...(values['sweep-interval-ms'] === undefined ? {} : { sweepIntervalMs: positiveNumber(values['sweep-interval-ms'], 'sweep-interval-ms') }),
  };
  return {
    ...(values.listen === undefined ? {} : { listen: values.listen }),
    ...(values.data === undefined ? {} : { dataDir: values.data }),
    ...(values.database === undefined ? {} : { database: values.database }),
    ...(values['allow-origin'] === undefined ? {} : { allowOrigins: values['allow-origin'].map(parseOrigin) }),
    push: {
      allowHttpEndpoints: values['allow-http-push-endpoints'] === true,
      ...(values['push-retry-base-ms'] === undefined ? {} : { retryBaseMs: positiveNumber(values['push-retry-base-ms'], 'push-retry-base-ms') }),
    },
    limits,
  };
}
