import type { Logger } from 'pino';
import type { BrokerDatabase } from './db.js';
import type { Hub } from './hub.js';
import type { Metrics } from './metrics.js';
import type { PushSender } from './push.js';
import type { SigningPrivateKey } from '../protocol/keys.js';

export type Role = 'admin' | 'device' | 'consumer';

/** An authenticated client: an org's admin, one of its approver devices or one of its consumer hosts. */
export interface Principal {
  org: string;
  role: Role;
  id: string;
}

export interface BrokerLimits {
  /** Pending requests one consumer may have open at once. */
  maxPendingPerConsumer: number;
  /** Requests one consumer may submit per minute. */
  requestsPerMinute: number;
  /** Milliseconds after which a request that no approver acknowledged ends as undelivered. */
  deliveryWindowMs: number;
  /** Longest allowed `expires - created` of a request, in seconds. */
  maxRequestLifetimeSeconds: number;
  /** Bearer token lifetime in seconds. */
  tokenLifetimeSeconds: number;
  /** Milliseconds between sweeps for expired and undelivered requests. */
  sweepIntervalMs: number;
  /** Maximum request body and WebSocket frame, in bytes. */
  maxBodyBytes: number;
}

export const DEFAULT_LIMITS: BrokerLimits = {
  maxPendingPerConsumer: 16,
  requestsPerMinute: 60,
  deliveryWindowMs: 30_000,
  maxRequestLifetimeSeconds: 900,
  tokenLifetimeSeconds: 900,
  sweepIntervalMs: 1000,
  maxBodyBytes: 256 * 1024,
};

/** Everything a handler needs, created once per broker. */
export interface BrokerContext {
  db: BrokerDatabase;
  hub: Hub;
  logger: Logger;
  metrics: Metrics;
  limits: BrokerLimits;
  brokerKey: SigningPrivateKey;
  /** Fingerprint of the broker key: the `audience` clients sign into auth challenges. */
  audience: string;
  /** Web Push to approver devices that are not connected; absent in brokers built without it. */
  push?: PushSender;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
