import type { BrokerEvent } from '../../broker/client.js';

/**
 * The live connection to the broker with the browser's own WebSocket, in
 * the message format of docs/broker-api.md: the first message authenticates
 * with the bearer token, then the broker pushes `request` and `settled`
 * events and the app sends `ack`s.
 */
export class LiveConnection {
  readonly #socket: WebSocket;
  readonly ready: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(brokerUrl: string, token: string, onEvent: (event: BrokerEvent) => void) {
    this.#socket = new WebSocket(brokerUrl.replace(/\/+$/, '').replace(/^http/, 'ws') + '/v1/ws');
    this.closed = new Promise((resolve) => {
      this.#socket.addEventListener('close', (event) => { resolve({ code: event.code, reason: event.reason }); });
    });
    this.ready = new Promise((resolve, reject) => {
      this.#socket.addEventListener('open', () => { this.#socket.send(JSON.stringify({ type: 'auth', token })); });
      this.#socket.addEventListener('message', (message) => {
        if (typeof message.data !== 'string') return;
        let event: { type?: unknown };
        try {
          event = JSON.parse(message.data) as { type?: unknown };
        } catch {
          return;
        }
        if (event.type === 'ready') resolve();
        else if (event.type !== 'pong') onEvent(event as BrokerEvent);
      });
      void this.closed.then(({ code, reason }) => { reject(new Error(`connection to the broker closed (${code} ${reason})`)); });
    });
    // A rejected `ready` after a successful start is reported through `closed`.
    this.ready.catch(() => undefined);
  }

  /** Confirms delivery of a request, so the daemon can tell the agent it reached an approver. */
  ack(requestId: string): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify({ type: 'ack', request: requestId }));
  }

  close(): void {
    this.#socket.close(1000, 'approver closed');
  }
}
