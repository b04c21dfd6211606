import type { Signed } from '../protocol/signed.js';
import type { ApprovalBody, RequestBody, RevocationBody } from '../protocol/types.js';
import { appendAudit } from './audit.js';
import { nowSeconds, type BrokerContext, type Principal } from './context.js';
import { BrokerError, conflict } from './errors.js';

/**
 * Leases as the broker sees them: a released request whose winning approval
 * granted `leaseSeconds` from the approval's `created` time. The plaintext
 * lives only in the consumer daemon; the broker lists leases and relays the
 * admin's signed lease revocations to that daemon, which wipes the values.
 */

export interface LeaseView {
  id: string;
  consumer: string;
  paths: string[];
  user: string;
  uid: number;
  exe: string;
  approvedBy: string;
  leaseSeconds: number;
  expires: number;
  revoked: boolean;
}

interface ReleasedRow {
  id: string;
  consumer: string;
  object: string;
  approval: string;
}

/** Lists the org's leases that have not ended yet, revoked ones included and marked. */
export async function listLeases(ctx: BrokerContext, org: string): Promise<{ leases: LeaseView[] }> {
  const now = nowSeconds();
  const rows = await ctx.db.all<ReleasedRow>(
    "SELECT id, consumer, object, approval FROM requests WHERE org = ? AND state = 'released' ORDER BY received", [org]);
  const revoked = new Set((await ctx.db.all<{ id: string }>("SELECT id FROM revocations WHERE org = ? AND kind = 'lease'", [org])).map((row) => row.id));
  const leases: LeaseView[] = [];
  for (const row of rows) {
    const lease = leaseOf(row, revoked.has(row.id));
    if (lease.expires > now) leases.push(lease);
  }
  return { leases };
}

function leaseOf(row: ReleasedRow, revoked: boolean): LeaseView {
  const request = (JSON.parse(row.object) as Signed<RequestBody>).body;
  const approval = (JSON.parse(row.approval) as Signed<ApprovalBody>).body;
  return {
    id: row.id,
    consumer: row.consumer,
    paths: request.paths,
    user: request.requester.user,
    uid: request.requester.uid,
    exe: request.requester.exe,
    approvedBy: approval.device,
    leaseSeconds: approval.leaseSeconds,
    expires: approval.created + approval.leaseSeconds,
    revoked,
  };
}

/**
 * Stores a verified lease revocation and pushes it to the consumer that holds
 * the lease. The daemon verifies the Org Identity signature itself; a daemon
 * that was offline finds the revocation in GET revocations when it reconnects.
 */
export async function revokeLease(ctx: BrokerContext, principal: Principal, revocation: Signed<RevocationBody>): Promise<{ revoked: string }> {
  const id = revocation.body.id;
  const consumer = await ctx.db.write(async (tx) => {
    const row = await tx.get<{ consumer: string; state: string }>('SELECT consumer, state FROM requests WHERE org = ? AND id = ?', [principal.org, id]);
    if (row === undefined) throw new BrokerError(404, 'not_found', `no lease ${id}: no request with that id`);
    if (row.state !== 'released') throw conflict('lease_not_found', `request ${id} is ${row.state}, so it holds no lease`);
    await tx.run('INSERT INTO revocations (org, kind, id, object) VALUES (?, ?, ?, ?) ON CONFLICT (org, kind, id) DO NOTHING',
      [principal.org, 'lease', id, JSON.stringify(revocation)]);
    await appendAudit(tx, principal.org, {
      type: 'lease-revoked', actor: `${principal.role}:${principal.id}`, subjects: [`lease:${id}`, `consumer:${row.consumer}`], object: revocation,
    }, nowSeconds());
    return row.consumer;
  });
  const pushed = ctx.hub.send(principal.org, 'consumer', consumer, { type: 'lease-revoked', request: id, revocation });
  ctx.logger.info({ event: 'lease-revoked', org: principal.org, request: id, consumer, pushed }, 'lease revoked');
  return { revoked: `lease:${id}` };
}
