import type { SecretBytes } from '../protocol/index.js';

/**
 * Released secrets held in memory for the length of their lease. A lease
 * belongs to the uid and executable that requested it, and is served to that
 * exact pair only: another executable of the same user, or another user
 * running the same executable, gets a new request. Values are SecretBytes,
 * never written anywhere, and wiped when the lease expires (timer), is
 * revoked, or the daemon stops.
 */

/** The owner of a lease: the uid and executable that requested it. */
export interface LeaseOwner {
  uid: number;
  exe: string;
}

export interface Lease {
  /** The request id that released it; the admin revokes a lease by this id. */
  id: string;
  owner: LeaseOwner;
  paths: string[];
  /** Unix seconds when the approval was made, clamped to the request's own lifetime. */
  granted: number;
  /** Hard expiry in Unix seconds: `granted` plus the lease the approver granted. */
  expires: number;
}

/** A lease as the socket API lists it, without values. */
export interface LeaseSummary extends Lease {
  remaining: number;
}

interface HeldLease extends Lease {
  values: Map<string, SecretBytes>;
  timer: NodeJS.Timeout;
}

/** Maximum delay setTimeout accepts (2^31 - 1 ms, about 24.8 days); longer leases re-arm the timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class LeaseStore {
  readonly #leases = new Map<string, HeldLease>();
  readonly #onEnd: (lease: Lease, reason: 'expired' | 'revoked' | 'stopped') => void;
  readonly #clock: () => number;

  constructor(options: { onEnd?: (lease: Lease, reason: 'expired' | 'revoked' | 'stopped') => void; clock?: () => number } = {}) {
    this.#onEnd = options.onEnd ?? (() => undefined);
    this.#clock = options.clock ?? Date.now;
  }

  /** Stores released values and arms the expiry timer. Takes ownership of `values`. */
  add(lease: Lease, values: Map<string, SecretBytes>): void {
    this.#end(lease.id, 'revoked');
    const held: HeldLease = { ...lease, paths: [...lease.paths], values, timer: this.#arm(lease.id, lease.expires) };
    this.#leases.set(lease.id, held);
  }

  /**
   * Returns the live value of `path` for `owner`, with its lease, or
   * undefined. A lease past its hard expiry is wiped here too, so a late
   * timer never lets it serve.
   */
  find(owner: LeaseOwner, path: string): { lease: Lease; value: SecretBytes } | undefined {
    const now = this.#nowSeconds();
    for (const held of this.#leases.values()) {
      if (held.owner.uid !== owner.uid || held.owner.exe !== owner.exe) continue;
      const value = held.values.get(path);
      if (value === undefined) continue;
      if (now >= held.expires) {
        this.#end(held.id, 'expired');
        continue;
      }
      return { lease: publicView(held), value };
    }
    return undefined;
  }

  /** Lists the leases of one uid, without values. */
  list(uid: number): LeaseSummary[] {
    const now = this.#nowSeconds();
    return [...this.#leases.values()]
      .filter((held) => held.owner.uid === uid && held.expires > now)
      .map((held) => ({ ...publicView(held), remaining: Math.floor(held.expires - now) }));
  }

  get(id: string): Lease | undefined {
    const held = this.#leases.get(id);
    return held === undefined ? undefined : publicView(held);
  }

  /** Wipes a lease now. Returns false when no such lease is held. */
  revoke(id: string): boolean {
    return this.#end(id, 'revoked');
  }

  /** Wipes every lease (daemon shutdown). */
  clear(): void {
    for (const id of [...this.#leases.keys()]) this.#end(id, 'stopped');
  }

  get size(): number {
    return this.#leases.size;
  }

  /** Whole seconds left before the hard expiry, never negative. */
  remaining(lease: Lease): number {
    return Math.max(0, Math.floor(lease.expires - this.#nowSeconds()));
  }

  #end(id: string, reason: 'expired' | 'revoked' | 'stopped'): boolean {
    const held = this.#leases.get(id);
    if (held === undefined) return false;
    this.#leases.delete(id);
    clearTimeout(held.timer);
    for (const value of held.values.values()) value.wipe();
    held.values.clear();
    this.#onEnd(publicView(held), reason);
    return true;
  }

  #arm(id: string, expires: number): NodeJS.Timeout {
    const delay = Math.max(0, expires * 1000 - this.#clock());
    const timer = setTimeout(() => {
      const held = this.#leases.get(id);
      if (held === undefined) return;
      if (this.#nowSeconds() >= held.expires) this.#end(id, 'expired');
      else held.timer = this.#arm(id, held.expires);
    }, Math.min(delay, MAX_TIMER_MS));
    timer.unref();
    return timer;
  }

  #nowSeconds(): number {
    return this.#clock() / 1000;
  }
}

function publicView(held: HeldLease): Lease {
  return { id: held.id, owner: { ...held.owner }, paths: [...held.paths], granted: held.granted, expires: held.expires };
}
