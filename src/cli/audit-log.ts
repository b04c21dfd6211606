import type { BrokerClient } from '../broker/client.js';
import type { AuditEntry } from '../broker/audit.js';
import type { AuditHeadBody, Signed } from '../protocol/index.js';

/** The broker's maximum audit page. */
const AUDIT_PAGE = 1000;

export interface ListedAuditEntry {
  entry: AuditEntry;
  hash: string;
}

/** Fetches audit entries after `after`, page by page, and the broker-signed head returned with the last page. */
export async function fetchAuditPages(client: BrokerClient, after = 0): Promise<{ entries: ListedAuditEntry[]; head: Signed<AuditHeadBody> }> {
  const entries: ListedAuditEntry[] = [];
  let cursor = after;
  for (;;) {
    const page = await client.auditEntries(cursor, AUDIT_PAGE);
    entries.push(...page.entries);
    const last = page.entries.at(-1);
    if (page.entries.length < AUDIT_PAGE || last === undefined) return { entries, head: page.head };
    cursor = last.entry.seq;
  }
}

export async function fetchAuditEntries(client: BrokerClient): Promise<ListedAuditEntry[]> {
  return (await fetchAuditPages(client)).entries;
}
