import { emptySeenState, readState, writeState, type SeenState } from '../local/state.js';
import type { AuditHeadRef } from '../protocol/index.js';

/**
 * What the daemon remembers across restarts (daemon/seen.json): the highest
 * policy and secret versions it accepted, the request ids it already released
 * or saw decided, and the last audit chain head. Verifiers take their
 * rollback minimums from here, and a request id found here is never released
 * again.
 *
 * Writes go through one promise chain, so two results settling at once never
 * lose each other's update.
 */
export class SeenStore {
  readonly file: string;
  #state: SeenState;
  /** Serialises writes of #state to `file`. */
  #writing: Promise<void> = Promise.resolve();

  private constructor(file: string, state: SeenState) {
    this.file = file;
    this.#state = state;
  }

  /** Loads `file`, or starts empty when it does not exist. Expired request ids are dropped. */
  static async load(file: string, now: number): Promise<SeenStore> {
    const state = (await readState<SeenState>(file)) ?? emptySeenState();
    for (const [id, forgetAfter] of Object.entries(state.requests)) {
      if (forgetAfter < now) Reflect.deleteProperty(state.requests, id);
    }
    return new SeenStore(file, state);
  }

  policyVersion(name: string): number {
    return this.#state.policyVersions[name] ?? 0;
  }

  secretVersion(path: string): number {
    return this.#state.secretVersions[path] ?? 0;
  }

  hasRequest(id: string): boolean {
    return Object.hasOwn(this.#state.requests, id);
  }

  get auditHead(): AuditHeadRef | null {
    return this.#state.auditHead;
  }

  /**
   * Records a released or decided request and the versions it carried, then
   * persists. `forgetAfter` is the Unix time after which the id may be
   * dropped (past the request's expiry, when no result can be valid anyway).
   */
  async recordRequest(id: string, forgetAfter: number, versions: { policies?: Record<string, number>; secrets?: Record<string, number> } = {}): Promise<void> {
    this.#state.requests[id] = forgetAfter;
    for (const [name, version] of Object.entries(versions.policies ?? {})) {
      this.#state.policyVersions[name] = Math.max(this.policyVersion(name), version);
    }
    for (const [path, version] of Object.entries(versions.secrets ?? {})) {
      this.#state.secretVersions[path] = Math.max(this.secretVersion(path), version);
    }
    await this.#persist();
  }

  /**
   * Stores a newer audit head. Returns false, and keeps the old one, when
   * `head` is older than the stored head or has its sequence number with
   * another hash: signs of a trimmed or forked log.
   */
  async recordAuditHead(head: AuditHeadRef): Promise<boolean> {
    const current = this.#state.auditHead;
    if (current !== null && head.seq < current.seq) return false;
    if (current?.seq === head.seq) return current.hash === head.hash;
    this.#state.auditHead = { seq: head.seq, hash: head.hash };
    await this.#persist();
    return true;
  }

  #persist(): Promise<void> {
    const snapshot = structuredClone(this.#state);
    const write = this.#writing.then(() => writeState(this.file, snapshot));
    // Later writes wait for this one but do not inherit its failure, which only this caller receives.
    this.#writing = write.catch(() => undefined);
    return write;
  }
}
