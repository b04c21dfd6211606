import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import webpush from 'web-push';
import type { BrokerContext, Principal } from './context.js';
import { BrokerError, forbidden } from './errors.js';
import { requireRecord } from './shape.js';

/**
 * Web Push (RFC 8030) to web approvers that are not connected: the broker
 * keeps one push subscription per device and, when a request is created,
 * sends each eligible device that has no live connection a notification.
 * The web-push package encrypts the payload to the subscription (RFC 8291)
 * and signs the request with the broker's VAPID key (RFC 8292). This file
 * sends it with fetch, so that it controls timeouts and retries. The payload carries
 * only the request id and a fixed label, never a path, reason or requester:
 * the push service and the platform's notification store see it.
 */

const VAPID_FILE = 'vapid-keys.json';
/** The `sub` claim of VAPID tokens: a contact for push services. */
const VAPID_SUBJECT = 'mailto:push@stillvault.invalid';
export const PUSH_LABEL = 'Approval requested';
const MAX_ENDPOINT_LENGTH = 2048;
const SEND_TIMEOUT_MS = 10_000;

export interface PushOptions {
  /** Accept http:// endpoints as well as https:// (for tests with a local push service). */
  allowHttpEndpoints: boolean;
  /** Attempts per notification, the first included; 429, 5xx and network failures are retried. */
  maxAttempts: number;
  /** Delay before the first retry; each further retry waits twice as long. */
  retryBaseMs: number;
}

export const DEFAULT_PUSH_OPTIONS: PushOptions = { allowHttpEndpoints: false, maxAttempts: 4, retryBaseMs: 1000 };

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
}

export interface PushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/**
 * Loads the VAPID key pair from DATA_DIR/vapid-keys.json, creating it (mode
 * 0600) on first start. A file readable by group or others is a fatal error.
 */
export function loadOrCreateVapidKeys(dataDir: string): VapidKeys {
  const file = join(dataDir, VAPID_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const keys = webpush.generateVAPIDKeys();
    writeFileSync(file, JSON.stringify({ v: 1, publicKey: keys.publicKey, privateKey: keys.privateKey }) + '\n', { mode: 0o600, flag: 'wx' });
    return keys;
  }
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new Error(`${file} has mode ${mode.toString(8)}; the VAPID private key must be readable by its owner only (chmod 600)`);
  }
  const stored = JSON.parse(text) as { v?: unknown; publicKey?: unknown; privateKey?: unknown };
  if (stored.v !== 1 || typeof stored.publicKey !== 'string' || typeof stored.privateKey !== 'string') {
    throw new Error(`${file} is not a version 1 VAPID key file`);
  }
  return { publicKey: stored.publicKey, privateKey: stored.privateKey };
}

function base64UrlBytes(value: unknown, name: string, length: number): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]+$/.test(value) || Buffer.from(value, 'base64url').length !== length) {
    throw new BrokerError(400, 'invalid_request', `${name} must be ${length} bytes as unpadded base64url`);
  }
  return value;
}

/** Checks a PushSubscription as the browser's `toJSON()` returns it. */
export function parseSubscription(input: unknown, options: PushOptions): PushSubscription {
  const body = requireRecord(input, 'body');
  const endpointText = body.endpoint;
  if (typeof endpointText !== 'string' || endpointText.length > MAX_ENDPOINT_LENGTH) {
    throw new BrokerError(400, 'invalid_request', `endpoint must be a URL of at most ${MAX_ENDPOINT_LENGTH} characters`);
  }
  let endpoint: URL;
  try {
    endpoint = new URL(endpointText);
  } catch {
    throw new BrokerError(400, 'invalid_request', 'endpoint is not a valid URL');
  }
  const allowed = endpoint.protocol === 'https:' || (options.allowHttpEndpoints && endpoint.protocol === 'http:');
  if (!allowed || endpoint.username !== '' || endpoint.password !== '') {
    throw new BrokerError(400, 'invalid_request', 'endpoint must be an https URL without credentials');
  }
  // Push services have public DNS names; an IP address or a local name would let a device aim the broker's POSTs at its own network.
  if (!options.allowHttpEndpoints && isLocalOrAddress(endpoint.hostname)) {
    throw new BrokerError(400, 'invalid_request', `endpoint host ${endpoint.hostname} is an IP address or a local name, not a push service`);
  }
  const keys = requireRecord(body.keys, 'keys');
  return {
    endpoint: endpoint.href,
    keys: { p256dh: base64UrlBytes(keys.p256dh, 'keys.p256dh', 65), auth: base64UrlBytes(keys.auth, 'keys.auth', 16) },
  };
}

function isLocalOrAddress(hostname: string): boolean {
  const name = hostname.toLowerCase();
  return name.startsWith('[') || /^[\d.]+$/.test(name) || !name.includes('.') || /\.(localhost|local|internal|home\.arpa)$/.test(name);
}

function senderOf(ctx: BrokerContext, principal: Principal): PushSender {
  if (principal.role !== 'device') throw forbidden('only approver devices have push subscriptions');
  if (ctx.push === undefined) throw new BrokerError(404, 'push_unavailable', 'this broker does not send Web Push notifications');
  return ctx.push;
}

/** Stores the device's subscription, replacing an earlier one. */
export async function putPushSubscription(ctx: BrokerContext, principal: Principal, input: unknown): Promise<unknown> {
  const subscription = parseSubscription(input, senderOf(ctx, principal).options);
  await ctx.db.write(async (tx) => {
    await tx.run('DELETE FROM push_subscriptions WHERE org = ? AND device = ?', [principal.org, principal.id]);
    await tx.run('INSERT INTO push_subscriptions (org, device, endpoint, p256dh, auth, created) VALUES (?, ?, ?, ?, ?, ?)',
      [principal.org, principal.id, subscription.endpoint, subscription.keys.p256dh, subscription.keys.auth, Math.floor(Date.now() / 1000)]);
  });
  ctx.logger.info({ event: 'push-subscribed', org: principal.org, device: principal.id, pushService: new URL(subscription.endpoint).origin }, 'push subscription stored');
  return { subscribed: true };
}

export async function deletePushSubscription(ctx: BrokerContext, principal: Principal): Promise<unknown> {
  senderOf(ctx, principal);
  const { changes } = await ctx.db.run('DELETE FROM push_subscriptions WHERE org = ? AND device = ?', [principal.org, principal.id]);
  ctx.logger.info({ event: 'push-unsubscribed', org: principal.org, device: principal.id }, 'push subscription removed');
  return { removed: changes > 0 };
}

interface SubscriptionRow {
  endpoint: string;
  p256dh: string;
  auth: string;
}

/** Sends pushes with the broker's VAPID key. One per broker, in BrokerContext. */
export class PushSender {
  readonly options: PushOptions;
  readonly #vapid: VapidKeys;
  /** Sends still in flight (retries included), so close() can wait for them. */
  readonly #inFlight = new Set<Promise<void>>();
  readonly #stop = new AbortController();

  constructor(vapid: VapidKeys, options: PushOptions) {
    this.#vapid = vapid;
    this.options = options;
  }

  get publicKey(): string {
    return this.#vapid.publicKey;
  }

  /** Starts a push to `device` in the background; failures are logged, never thrown. */
  notify(ctx: BrokerContext, org: string, device: string, request: string, expires: number): void {
    const sending = this.#send(ctx, org, device, request, expires).catch((error: unknown) => {
      ctx.logger.error({ event: 'push-failed', org, device, request, err: error }, 'push failed');
    });
    this.#inFlight.add(sending);
    void sending.finally(() => this.#inFlight.delete(sending));
  }

  /** Cancels pending retries and waits for sends in flight. */
  async close(): Promise<void> {
    this.#stop.abort();
    await Promise.all([...this.#inFlight]);
  }

  #stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  async #send(ctx: BrokerContext, org: string, device: string, request: string, expires: number): Promise<void> {
    const row = await ctx.db.get<SubscriptionRow>('SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE org = ? AND device = ?', [org, device]);
    if (row === undefined) return;
    const subscription = { endpoint: row.endpoint, keys: { p256dh: row.p256dh, auth: row.auth } };
    const payload = JSON.stringify({ v: 1, request, label: PUSH_LABEL });
    const log = { org, device, request, pushService: new URL(row.endpoint).origin };

    for (let attempt = 1; ; attempt++) {
      const ttl = Math.max(0, expires - Math.floor(Date.now() / 1000));
      if (ttl === 0 || this.#stopping()) return;
      // A fresh request each attempt: the VAPID token and the encryption's salt and key are new every time.
      const details = webpush.generateRequestDetails(subscription, payload, {
        TTL: ttl,
        urgency: 'high',
        vapidDetails: { subject: VAPID_SUBJECT, publicKey: this.#vapid.publicKey, privateKey: this.#vapid.privateKey },
      });
      let status: number;
      let retryAfter: string | null = null;
      try {
        const response = await fetch(details.endpoint, {
          method: details.method,
          headers: details.headers as Record<string, string>,
          body: new Uint8Array(details.body),
          redirect: 'error',
          signal: AbortSignal.any([AbortSignal.timeout(SEND_TIMEOUT_MS), this.#stop.signal]),
        });
        status = response.status;
        retryAfter = response.headers.get('retry-after');
        await response.body?.cancel();
      } catch (error) {
        if (this.#stopping()) return;
        status = 0;
        ctx.logger.warn({ event: 'push-error', ...log, attempt, message: (error as Error).message }, 'push request failed');
      }

      if (status >= 200 && status < 300) {
        ctx.logger.info({ event: 'push-sent', ...log, attempt, status }, 'push sent');
        return;
      }
      if (status === 404 || status === 410) {
        await ctx.db.run('DELETE FROM push_subscriptions WHERE org = ? AND device = ? AND endpoint = ?', [org, device, row.endpoint]);
        ctx.logger.info({ event: 'push-subscription-expired', ...log, status }, 'push service no longer knows the subscription; removed it');
        return;
      }
      const retryable = status === 0 || status === 429 || status >= 500;
      if (!retryable || attempt >= this.options.maxAttempts) {
        ctx.logger.warn({ event: 'push-gave-up', ...log, attempt, status }, 'push not delivered');
        return;
      }
      const delay = retryDelay(this.options.retryBaseMs, attempt, retryAfter);
      ctx.logger.info({ event: 'push-retry', ...log, attempt, status, delayMs: delay }, 'push will be retried');
      try {
        await sleep(delay, undefined, { signal: this.#stop.signal });
      } catch {
        return;
      }
    }
  }
}

/** Backoff: base * 2^(attempt-1), or the push service's Retry-After in seconds when longer, at most 60 s. */
export function retryDelay(baseMs: number, attempt: number, retryAfter: string | null): number {
  const backoff = baseMs * 2 ** (attempt - 1);
  const requested = retryAfter !== null && /^\d{1,6}$/.test(retryAfter) ? Number(retryAfter) * 1000 : 0;
  return Math.min(Math.max(backoff, requested), 60_000);
}
