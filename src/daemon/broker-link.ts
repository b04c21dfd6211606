import type { Logger } from 'pino';
import { BrokerClient, BrokerClientError, type BrokerEvent, type BrokerEventStream } from '../broker/client.js';
import type { SigningPrivateKey } from '../protocol/index.js';

/**
 * The daemon's connection to its broker: a BrokerClient authenticated as
 * this consumer, with the token renewed before it expires, and one WebSocket
 * kept open with exponential backoff between attempts. Every WebSocket
 * message goes to one handler, and `onConnected` runs after each successful
 * (re)connect so pending requests can be polled for results missed while
 * disconnected.
 */

/** Renew the bearer token when fewer than this many seconds remain. */
const TOKEN_RENEW_MARGIN_SECONDS = 60;
const BACKOFF_INITIAL_MS = 500;
const BACKOFF_MAX_MS = 30_000;

export interface BrokerLinkOptions {
  url: string;
  org: string;
  consumer: string;
  hostKey: SigningPrivateKey;
  logger: Logger;
  /** Receives every WebSocket message, including types this version does not know. */
  onMessage: (event: BrokerEvent | { type: string; [key: string]: unknown }) => void;
  onConnected: () => void;
}

export class BrokerLink {
  readonly url: string;
  readonly #options: BrokerLinkOptions;
  readonly #client: BrokerClient;
  #tokenExpires = 0;
  /** The authentication in flight, shared by concurrent callers. */
  #authenticating: Promise<void> | null = null;
  #stream: BrokerEventStream | null = null;
  #stopped = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;

  constructor(options: BrokerLinkOptions) {
    this.#options = options;
    this.url = options.url;
    this.#client = new BrokerClient(options.url, options.org);
  }

  get connected(): boolean {
    return this.#stream !== null;
  }

  /** Authenticates once; throws the broker's error (auth_failed for a revoked or unknown certificate). */
  async authenticate(): Promise<void> {
    this.#authenticating ??= (async () => {
      try {
        const { expires } = await this.#client.authenticate('consumer', this.#options.consumer, this.#options.hostKey);
        this.#tokenExpires = expires;
      } finally {
        this.#authenticating = null;
      }
    })();
    await this.#authenticating;
  }

  /**
   * Runs `operation` with an authenticated client. The token is renewed when
   * close to expiry, and once more when the broker returns `unauthorized`.
   */
  async call<T>(operation: (client: BrokerClient) => Promise<T>): Promise<T> {
    if (Date.now() / 1000 > this.#tokenExpires - TOKEN_RENEW_MARGIN_SECONDS) await this.authenticate();
    try {
      return await operation(this.#client);
    } catch (error) {
      if (!(error instanceof BrokerClientError) || error.code !== 'unauthorized') throw error;
      await this.authenticate();
      return operation(this.#client);
    }
  }

  /** Sends an acknowledgement for a result, when connected. The broker redelivers unacknowledged results after a reconnect. */
  ack(requestId: string): void {
    this.#stream?.ack(requestId);
  }

  /** Starts the WebSocket loop in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#stream?.close();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let delay = BACKOFF_INITIAL_MS;
    while (!this.#stopped) {
      try {
        const stream = await this.call((client) => client.connect());
        if (this.#isStopped()) {
          await stream.close();
          break;
        }
        this.#stream = stream;
        delay = BACKOFF_INITIAL_MS;
        this.#options.logger.info({ event: 'broker-connected', broker: this.url }, 'connected to the broker');
        this.#options.onConnected();
        for await (const event of stream) this.#options.onMessage(event);
        const { code, reason } = await stream.closed;
        this.#options.logger.warn({ event: 'broker-disconnected', broker: this.url, closeCode: code, closeReason: reason }, 'broker connection closed');
      } catch (error) {
        this.#options.logger.warn({ event: 'broker-connect-failed', broker: this.url, code: errorCode(error), message: (error as Error).message }, 'connecting to the broker failed');
      } finally {
        this.#stream = null;
      }
      if (this.#isStopped()) break;
      await this.#sleep(delay + Math.floor(Math.random() * delay * 0.2));
      delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    }
  }

  /** Read through a method, because the flag changes while #run awaits. */
  #isStopped(): boolean {
    return this.#stopped;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.#wake = null; resolve(); }, ms);
      this.#wake = () => { clearTimeout(timer); this.#wake = null; resolve(); };
    });
  }
}

/** Returns the stable code of a broker client, protocol or daemon error, or 'internal_error'. */
export function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') return error.code;
  return 'internal_error';
}
