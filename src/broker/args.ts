import { parseArgs } from 'node:util';
import { BROKER_HELP } from './help.js';
import type { BrokerOptions } from './index.js';

export { BROKER_HELP };

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
