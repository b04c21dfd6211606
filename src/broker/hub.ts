import type { WebSocket } from 'ws';
import type { Principal, Role } from './context.js';

/** Server-to-client WebSocket messages; docs/broker-api.md describes each. */
export type ServerMessage =
  | { type: 'ready'; role: Role; id: string }
  | { type: 'request'; request: string; bundle: unknown }
  | { type: 'settled'; request: string; state: string; settledBy: string | null }
  | { type: 'delivered'; request: string; delivered: number; eligible: number }
  | { type: 'result'; request: string; state: string; reason?: string; codes?: string[]; approval?: unknown; secrets?: unknown }
  | { type: 'lease-revoked'; request: string; revocation: unknown }
  | { type: 'error'; code: string; message: string }
  | { type: 'pong' };

function keyOf(org: string, role: Role, id: string): string {
  return `${org}\u0000${role}\u0000${id}`;
}

/** Live, authenticated WebSocket connections, indexed by principal. */
export class Hub {
  // Guards nothing across awaits: all access happens on the event loop thread.
  readonly #sockets = new Map<string, Set<WebSocket>>();

  add(principal: Principal, socket: WebSocket): void {
    const key = keyOf(principal.org, principal.role, principal.id);
    let set = this.#sockets.get(key);
    if (set === undefined) {
      set = new Set();
      this.#sockets.set(key, set);
    }
    set.add(socket);
  }

  remove(principal: Principal, socket: WebSocket): void {
    const key = keyOf(principal.org, principal.role, principal.id);
    const set = this.#sockets.get(key);
    if (set === undefined) return;
    set.delete(socket);
    if (set.size === 0) this.#sockets.delete(key);
  }

  /** Sends a message to every connection of one principal; returns how many sockets it was written to. */
  send(org: string, role: Role, id: string, message: ServerMessage): number {
    const set = this.#sockets.get(keyOf(org, role, id));
    if (set === undefined) return 0;
    const text = JSON.stringify(message);
    let sent = 0;
    for (const socket of set) {
      if (socket.readyState === socket.OPEN) {
        socket.send(text);
        sent++;
      }
    }
    return sent;
  }

  /** Closes every connection of one principal, for example after its certificate was revoked. */
  closePrincipal(org: string, role: Role, id: string, code: number, reason: string): void {
    const set = this.#sockets.get(keyOf(org, role, id));
    if (set === undefined) return;
    for (const socket of set) socket.close(code, reason);
  }

  connectedByRole(): Record<Role, number> {
    const counts: Record<Role, number> = { admin: 0, device: 0, consumer: 0 };
    for (const [key, set] of this.#sockets) {
      const role = key.split('\u0000')[1] as Role;
      counts[role] += set.size;
    }
    return counts;
  }

  closeAll(): void {
    for (const set of this.#sockets.values()) for (const socket of set) socket.terminate();
    this.#sockets.clear();
  }
}
