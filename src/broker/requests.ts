import { policyAllows, policyCoversPath } from '../protocol/policy.js';
import { REFUSAL_CODE_PATTERN } from '../protocol/errors.js';
import type { Signed } from '../protocol/signed.js';
import type { ConsumerCertBody, DeviceCertBody, PolicyBody, RequestBody, SecretBody } from '../protocol/types.js';
import { appendAudit } from './audit.js';
import { nowSeconds, type BrokerContext, type Principal } from './context.js';
import type { Queryable } from './db.js';
import { BrokerError, conflict, forbidden } from './errors.js';
import type { ServerMessage } from './hub.js';
import { requireRecord } from './shape.js';
import { latestPolicies, latestSecrets, orgTrust, principalCertificate, validCertificate } from './store.js';
import { policyMakesEligible, requestHash, verifyApprovalObject, verifyRequestObject } from './verify.js';

/**
 * The request flow: a consumer's signed request is pushed to every eligible
 * approver, delivery is acknowledged, and the first valid approval or denial
 * settles it in one conditional update. Expiry and the delivery window end
 * requests through the sweeper and on every read.
 */

export type RequestState = 'pending' | 'released' | 'denied' | 'expired' | 'undelivered' | 'cancelled' | 'refused';


interface RequestRow {
  id: string; consumer: string; object: string; request_hash: string; state: RequestState;
  expires: number; deliver_by: number; eligible: number; delivered: number;
  settled_by: string | null; approval: string | null; secrets: string; result_acked: number;
}

/** The objects an approver needs to decide, each of which it re-verifies. */
export interface Bundle {
  request: Signed<RequestBody>;
  policy: Signed<PolicyBody>;
  secrets: Signed<SecretBody>[];
  consumerCert: Signed<ConsumerCertBody>;
}

/** Per-consumer sliding one-minute windows of submission times. */
// NOTE: kept per process, so N brokers on one PostgreSQL database allow N times the rate.
const submissionTimes = new Map<string, number[]>();

function checkRate(ctx: BrokerContext, org: string, consumer: string): void {
  const key = `${org}\u0000${consumer}`;
  const now = Date.now();
  const recent = (submissionTimes.get(key) ?? []).filter((time) => time > now - 60_000);
  if (recent.length >= ctx.limits.requestsPerMinute) {
    submissionTimes.set(key, recent);
    throw new BrokerError(429, 'rate_limited', `consumer ${consumer} sent more than ${ctx.limits.requestsPerMinute} requests in the last minute`);
  }
  recent.push(now);
  submissionTimes.set(key, recent);
}

/** Maps every eligible device to the policy that makes it eligible (the first by name). */
async function eligibleApprovers(ctx: BrokerContext, org: string, request: RequestBody): Promise<Map<string, Signed<PolicyBody>>> {
  const eligible = new Map<string, Signed<PolicyBody>>();
  for (const policy of await latestPolicies(ctx.db, org)) {
    if (!policyMakesEligible(policy.body, request)) continue;
    for (const device of policy.body.approvers) {
      if (eligible.has(device)) continue;
      if ((await validCertificate(ctx.db, org, 'device', device)) !== undefined) eligible.set(device, policy);
    }
  }
  return eligible;
}

/**
 * Names what failed for the policy of this org that came closest to making
 * a device eligible: the consumer is not listed, no path glob matches, no
 * requester rule matches, or no approver holds a valid certificate. Only the
 * consumer's own org is read, and its members can list its policies anyway.
 */
async function explainNoEligibleApprover(ctx: BrokerContext, org: string, request: RequestBody): Promise<string> {
  const policies = await latestPolicies(ctx.db, org);
  if (policies.length === 0) return 'no policy exists in this org';
  const requester = request.requester;
  let closest: { stage: number; message: string } = { stage: -1, message: '' };
  for (const { body: policy } of policies) {
    let stage: number;
    let message: string;
    const uncovered = request.paths.filter((path) => !policyCoversPath(policy, path));
    if (!policy.consumers.includes(request.consumer)) {
      stage = 0;
      message = `no policy lists consumer ${request.consumer}`;
    } else if (uncovered.length > 0) {
      stage = 1;
      message = `policy ${policy.name} lists consumer ${request.consumer}, but none of its path globs (${policy.paths.join(', ')}) matches ${uncovered.join(', ')}`;
    } else if (!request.paths.every((path) => policyAllows(policy, { consumer: request.consumer, requester, path }))) {
      stage = 2;
      message = `policy ${policy.name} covers ${request.paths.join(', ')} for consumer ${request.consumer}, but none of its requester rules matches user ${requester.user === '' ? '(unknown)' : requester.user}, uid ${requester.uid}, exe ${requester.exe}`;
    } else if (policy.quorum !== 1) {
      stage = 3;
      message = `policy ${policy.name} allows this request but needs ${policy.quorum} approvals, and this broker supports only a quorum of 1`;
    } else {
      stage = 3;
      message = `policy ${policy.name} allows this request, but none of its approvers has a valid, unrevoked certificate`;
    }
    if (stage > closest.stage) closest = { stage, message };
  }
  return closest.message;
}

export async function createRequest(ctx: BrokerContext, principal: Principal, input: unknown): Promise<unknown> {
  if (principal.role !== 'consumer') throw forbidden('only consumers submit requests');
  const { cert } = await principalCertificate<ConsumerCertBody>(ctx, principal);
  const now = nowSeconds();
  const request = await verifyRequestObject(requireRecord(input, 'body').request, await orgTrust(ctx.db, principal.org), cert, now);
  const body = request.body;
  if (body.consumer !== principal.id) throw forbidden(`request names consumer ${body.consumer}, but ${principal.id} sent it`);
  if (body.expires <= now) throw new BrokerError(400, 'expired', 'request has already expired');
  if (body.expires - body.created > ctx.limits.maxRequestLifetimeSeconds) {
    throw new BrokerError(400, 'invalid_request', `request lifetime must be at most ${ctx.limits.maxRequestLifetimeSeconds} s`);
  }
  if (new Set(body.paths).size !== body.paths.length) throw new BrokerError(400, 'invalid_request', 'request paths must be distinct');
  checkRate(ctx, principal.org, principal.id);

  const secrets = await latestSecrets(ctx.db, principal.org, body.paths);
  if (secrets.length !== body.paths.length) {
    const found = new Set(secrets.map((secret) => secret.body.path));
    throw new BrokerError(404, 'secret_not_found', `no secret stored at ${body.paths.filter((path) => !found.has(path)).join(', ')}`);
  }
  const eligible = await eligibleApprovers(ctx, principal.org, body);
  if (eligible.size === 0) throw conflict('no_eligible_approver', await explainNoEligibleApprover(ctx, principal.org, body));

  const hash = requestHash(request);
  const deliverBy = Date.now() + ctx.limits.deliveryWindowMs;
  await ctx.db.write(async (tx) => {
    const pending = await tx.get<{ count: number | string }>(
      "SELECT COUNT(*) AS count FROM requests WHERE org = ? AND consumer = ? AND state = 'pending'", [principal.org, principal.id]);
    if (Number(pending?.count ?? 0) >= ctx.limits.maxPendingPerConsumer) {
      throw new BrokerError(429, 'too_many_pending', `consumer ${principal.id} already has ${ctx.limits.maxPendingPerConsumer} pending requests`);
    }
    const existing = await tx.get('SELECT id FROM requests WHERE org = ? AND id = ?', [principal.org, body.id]);
    if (existing !== undefined) throw conflict('duplicate_request', `request ${body.id} already exists`);
    await tx.run(
      `INSERT INTO requests (org, id, consumer, object, request_hash, state, created, received, expires, deliver_by,
         eligible, delivered, settled_by, approval, secrets, result_acked)
       VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, 0, NULL, NULL, ?, 0)`,
      [principal.org, body.id, principal.id, JSON.stringify(request), hash, body.created, now, body.expires, deliverBy,
        eligible.size, JSON.stringify(secrets)]);
    for (const [device, policy] of eligible) {
      await tx.run('INSERT INTO deliveries (org, request_id, device, policy, acked) VALUES (?, ?, ?, ?, 0)',
        [principal.org, body.id, device, JSON.stringify(policy)]);
    }
    await appendAudit(tx, principal.org, { type: 'request-created', actor: `consumer:${principal.id}`, subjects: [body.id, `eligible:${eligible.size}`], object: request }, now);
  });
  ctx.metrics.countRequestState('pending');
  ctx.logger.info({ event: 'request-state', org: principal.org, request: body.id, consumer: principal.id, state: 'pending', eligible: eligible.size }, 'request created');

  let pushed = 0;
  for (const [device, policy] of eligible) {
    const bundle: Bundle = { request, policy, secrets, consumerCert: cert };
    const live = ctx.hub.send(principal.org, 'device', device, { type: 'request', request: body.id, bundle }) > 0;
    pushed += live ? 1 : 0;
    // A device without a live connection gets a Web Push notification, if it subscribed to one.
    if (!live) ctx.push?.notify(ctx, principal.org, device, body.id, body.expires);
  }
  ctx.logger.debug({ event: 'request-pushed', org: principal.org, request: body.id, pushed }, 'request pushed');
  return { request: body.id, state: 'pending', eligible: eligible.size };
}

async function loadRequest(db: Queryable, org: string, id: string): Promise<RequestRow> {
  const row = await db.get<RequestRow>(
    `SELECT id, consumer, object, request_hash, state, expires, deliver_by, eligible, delivered, settled_by, approval, secrets, result_acked
     FROM requests WHERE org = ? AND id = ?`, [org, id]);
  if (row === undefined) throw new BrokerError(404, 'not_found', `request ${id} not found`);
  return row;
}

/** Returns the codes eligible devices sent when refusing request `id`, one per refusing device, ordered by device id. */
async function refusalCodes(db: Queryable, org: string, id: string): Promise<string[]> {
  const rows = await db.all<{ code: string }>('SELECT code FROM refusals WHERE org = ? AND request_id = ? ORDER BY device', [org, id]);
  return rows.map((row) => row.code);
}

async function resultMessage(db: Queryable, org: string, row: RequestRow): Promise<ServerMessage> {
  const message: ServerMessage = { type: 'result', request: row.id, state: row.state };
  if (row.approval !== null) message.approval = JSON.parse(row.approval);
  if (row.state === 'released') message.secrets = JSON.parse(row.secrets);
  if (row.state === 'expired' || row.state === 'undelivered' || row.state === 'cancelled' || row.state === 'refused') message.reason = row.state;
  if (row.state === 'refused') message.codes = await refusalCodes(db, org, row.id);
  return message;
}

/** Tells the consumer and every eligible device that a request ended. */
async function announceSettled(ctx: BrokerContext, org: string, id: string): Promise<void> {
  const row = await loadRequest(ctx.db, org, id);
  ctx.metrics.countRequestState(row.state);
  ctx.logger.info({ event: 'request-state', org, request: id, state: row.state, settledBy: row.settled_by }, `request ${row.state}`);
  ctx.hub.send(org, 'consumer', row.consumer, await resultMessage(ctx.db, org, row));
  const devices = await ctx.db.all<{ device: string }>('SELECT device FROM deliveries WHERE org = ? AND request_id = ?', [org, id]);
  for (const { device } of devices) {
    ctx.hub.send(org, 'device', device, { type: 'settled', request: id, state: row.state, settledBy: row.settled_by });
  }
}

/**
 * Ends a pending request whose expiry or delivery window has passed. Returns
 * true when this call ended it. Runs from the sweeper and before every read.
 */
export async function settleIfTimedOut(ctx: BrokerContext, org: string, id: string): Promise<boolean> {
  const now = nowSeconds();
  const nowMs = Date.now();
  const state = await ctx.db.write(async (tx) => {
    const expired = await tx.run("UPDATE requests SET state = 'expired' WHERE org = ? AND id = ? AND state = 'pending' AND expires <= ?", [org, id, now]);
    let outcome: RequestState | null = expired.changes === 1 ? 'expired' : null;
    if (outcome === null) {
      const undelivered = await tx.run(
        "UPDATE requests SET state = 'undelivered' WHERE org = ? AND id = ? AND state = 'pending' AND delivered = 0 AND deliver_by <= ?",
        [org, id, nowMs]);
      if (undelivered.changes === 1) outcome = 'undelivered';
    }
    if (outcome !== null) {
      await appendAudit(tx, org, { type: outcome === 'expired' ? 'request-expired' : 'request-undelivered', actor: 'broker', subjects: [id] }, now);
    }
    return outcome;
  });
  if (state === null) return false;
  await announceSettled(ctx, org, id);
  return true;
}

/** Ends every timed-out request across orgs; called on an interval. */
export async function sweep(ctx: BrokerContext): Promise<number> {
  const rows = await ctx.db.all<{ org: string; id: string }>(
    "SELECT org, id FROM requests WHERE state = 'pending' AND (expires <= ? OR (delivered = 0 AND deliver_by <= ?)) LIMIT 200",
    [nowSeconds(), Date.now()]);
  let settled = 0;
  for (const row of rows) if (await settleIfTimedOut(ctx, row.org, row.id)) settled++;
  return settled;
}

/** Records that a device received a request and notifies the consumer of the delivered count. */
export async function acknowledgeDelivery(ctx: BrokerContext, principal: Principal, id: string): Promise<{ delivered: number }> {
  if (principal.role !== 'device') throw forbidden('only devices acknowledge delivery');
  const result = await ctx.db.write(async (tx) => {
    const changed = await tx.run('UPDATE deliveries SET acked = 1 WHERE org = ? AND request_id = ? AND device = ? AND acked = 0', [principal.org, id, principal.id]);
    if (changed.changes === 1) {
      await tx.run('UPDATE requests SET delivered = delivered + 1 WHERE org = ? AND id = ?', [principal.org, id]);
      await appendAudit(tx, principal.org, { type: 'request-delivered', actor: `device:${principal.id}`, subjects: [id] }, nowSeconds());
    } else {
      const delivery = await tx.get('SELECT acked FROM deliveries WHERE org = ? AND request_id = ? AND device = ?', [principal.org, id, principal.id]);
      if (delivery === undefined) throw new BrokerError(404, 'not_found', `request ${id} was not delivered to this device`);
    }
    const row = await loadRequest(tx, principal.org, id);
    return { fresh: changed.changes === 1, row };
  });
  if (result.fresh && result.row.state === 'pending') {
    ctx.hub.send(principal.org, 'consumer', result.row.consumer,
      { type: 'delivered', request: id, delivered: result.row.delivered, eligible: result.row.eligible });
  }
  return { delivered: result.row.delivered };
}

/** Records that a consumer received the outcome, so it is not sent again on reconnect. */
export async function acknowledgeResult(ctx: BrokerContext, principal: Principal, id: string): Promise<void> {
  await ctx.db.write(async (tx) => {
    const changed = await tx.run(
      "UPDATE requests SET result_acked = 1 WHERE org = ? AND id = ? AND consumer = ? AND state <> 'pending' AND result_acked = 0",
      [principal.org, id, principal.id]);
    if (changed.changes === 1) {
      await appendAudit(tx, principal.org, { type: 'result-acknowledged', actor: `consumer:${principal.id}`, subjects: [id] }, nowSeconds());
    }
  });
}

/** Accepts the first valid approval or denial for a pending request; later ones are rejected and audited. */
export async function submitApproval(ctx: BrokerContext, principal: Principal, id: string, input: unknown): Promise<unknown> {
  if (principal.role !== 'device') throw forbidden('only devices submit approvals');
  const { cert } = await principalCertificate<DeviceCertBody>(ctx, principal);
  const row = await loadRequest(ctx.db, principal.org, id);
  const delivery = await ctx.db.get<{ policy: string }>('SELECT policy FROM deliveries WHERE org = ? AND request_id = ? AND device = ?', [principal.org, id, principal.id]);
  if (delivery === undefined) throw new BrokerError(403, 'not_eligible', `device ${principal.id} is not an eligible approver of request ${id}`);
  await settleIfTimedOut(ctx, principal.org, id);
  const now = nowSeconds();
  const approval = await verifyApprovalObject(requireRecord(input, 'body').approval, {
    trust: await orgTrust(ctx.db, principal.org),
    request: JSON.parse(row.object) as Signed<RequestBody>,
    deviceCert: cert,
    policy: JSON.parse(delivery.policy) as Signed<PolicyBody>,
    now,
  });
  const state: RequestState = approval.body.decision === 'approve' ? 'released' : 'denied';
  const outcome = await ctx.db.write(async (tx) => {
    const won = await tx.run(
      "UPDATE requests SET state = ?, settled_by = ?, approval = ? WHERE org = ? AND id = ? AND state = 'pending' AND expires > ?",
      [state, principal.id, JSON.stringify(approval), principal.org, id, now]);
    const type = won.changes === 1 ? 'approval-accepted' : 'approval-rejected';
    await appendAudit(tx, principal.org, { type, actor: `device:${principal.id}`, subjects: [id], object: approval }, now);
    return won.changes === 1 ? 'won' : (await loadRequest(tx, principal.org, id)).state;
  });
  if (outcome !== 'won') {
    ctx.metrics.countError('request_settled');
    ctx.logger.info({ event: 'approval-rejected', org: principal.org, request: id, device: principal.id, state: outcome }, 'late approval rejected');
    if (outcome === 'expired' || outcome === 'pending') throw conflict('request_expired', `request ${id} has expired`);
    throw conflict('request_settled', `request ${id} is already ${outcome}`);
  }
  await announceSettled(ctx, principal.org, id);
  return { request: id, state };
}

async function statusView(db: Queryable, org: string, row: RequestRow): Promise<unknown> {
  return {
    id: row.id, state: row.state, eligible: row.eligible, delivered: row.delivered, settledBy: row.settled_by,
    request: JSON.parse(row.object) as unknown,
    approval: row.approval === null ? null : JSON.parse(row.approval) as unknown,
    secrets: row.state === 'released' ? JSON.parse(row.secrets) as unknown : null,
    refusals: await refusalCodes(db, org, row.id),
  };
}

export async function getRequest(ctx: BrokerContext, principal: Principal, id: string): Promise<unknown> {
  await loadRequest(ctx.db, principal.org, id);
  await settleIfTimedOut(ctx, principal.org, id);
  const row = await loadRequest(ctx.db, principal.org, id);
  if (principal.role === 'consumer' && row.consumer !== principal.id) throw new BrokerError(404, 'not_found', `request ${id} not found`);
  if (principal.role === 'device') {
    const delivery = await ctx.db.get('SELECT acked FROM deliveries WHERE org = ? AND request_id = ? AND device = ?', [principal.org, id, principal.id]);
    if (delivery === undefined) throw new BrokerError(404, 'not_found', `request ${id} not found`);
  }
  return { request: await statusView(ctx.db, principal.org, row) };
}

async function bundlesForDevice(ctx: BrokerContext, org: string, device: string, unackedOnly: boolean): Promise<{ id: string; bundle: Bundle }[]> {
  const rows = await ctx.db.all<{ id: string; consumer: string; object: string; secrets: string; policy: string; expires: number }>(
    `SELECT r.id, r.consumer, r.object, r.secrets, d.policy, r.expires FROM deliveries d
     JOIN requests r ON r.org = d.org AND r.id = d.request_id
     WHERE d.org = ? AND d.device = ? AND r.state = 'pending' ${unackedOnly ? 'AND d.acked = 0' : ''}
       AND NOT EXISTS (SELECT 1 FROM refusals f WHERE f.org = d.org AND f.request_id = d.request_id AND f.device = d.device)
     ORDER BY r.received, r.id`, [org, device]);
  const bundles: { id: string; bundle: Bundle }[] = [];
  for (const row of rows) {
    if (row.expires <= nowSeconds()) continue;
    const consumer = await ctx.db.get<{ object: string }>("SELECT object FROM certificates WHERE org = ? AND kind = 'consumer' AND id = ?", [org, row.consumer]);
    if (consumer === undefined) continue;
    bundles.push({
      id: row.id,
      bundle: {
        request: JSON.parse(row.object) as Signed<RequestBody>,
        policy: JSON.parse(row.policy) as Signed<PolicyBody>,
        secrets: JSON.parse(row.secrets) as Signed<SecretBody>[],
        consumerCert: JSON.parse(consumer.object) as Signed<ConsumerCertBody>,
      },
    });
  }
  return bundles;
}

export async function listPendingRequests(ctx: BrokerContext, principal: Principal): Promise<unknown> {
  if (principal.role !== 'device') throw forbidden('only devices list pending requests');
  const bundles = await bundlesForDevice(ctx, principal.org, principal.id, false);
  return { requests: bundles.map((item) => item.bundle) };
}

/** Sends what a client missed while away: unacknowledged requests to a device, unacknowledged outcomes to a consumer. */
export async function redeliver(ctx: BrokerContext, principal: Principal): Promise<void> {
  if (principal.role === 'device') {
    for (const { id, bundle } of await bundlesForDevice(ctx, principal.org, principal.id, true)) {
      ctx.hub.send(principal.org, 'device', principal.id, { type: 'request', request: id, bundle });
    }
  } else if (principal.role === 'consumer') {
    const rows = await ctx.db.all<RequestRow>(
      `SELECT id, consumer, object, request_hash, state, expires, deliver_by, eligible, delivered, settled_by, approval, secrets, result_acked
       FROM requests WHERE org = ? AND consumer = ? AND state <> 'pending' AND result_acked = 0 ORDER BY received, id`, [principal.org, principal.id]);
    for (const row of rows) ctx.hub.send(principal.org, 'consumer', principal.id, await resultMessage(ctx.db, principal.org, row));
  }
}

/**
 * Ends a pending request at the request of the consumer that sent it, for
 * example because its caller left or its daemon stopped. Nothing is signed:
 * a cancellation only ends a request early, which the broker could do anyway
 * by withholding it.
 */
export async function cancelRequest(ctx: BrokerContext, principal: Principal, id: string): Promise<unknown> {
  if (principal.role !== 'consumer') throw forbidden('only consumers cancel requests');
  const row = await loadRequest(ctx.db, principal.org, id);
  if (row.consumer !== principal.id) throw new BrokerError(404, 'not_found', `request ${id} not found`);
  await settleIfTimedOut(ctx, principal.org, id);
  const now = nowSeconds();
  const outcome = await ctx.db.write(async (tx) => {
    // The consumer asked for the ending, so its result counts as acknowledged and is not redelivered.
    const won = await tx.run(
      "UPDATE requests SET state = 'cancelled', result_acked = 1 WHERE org = ? AND id = ? AND consumer = ? AND state = 'pending'",
      [principal.org, id, principal.id]);
    if (won.changes !== 1) return (await loadRequest(tx, principal.org, id)).state;
    await appendAudit(tx, principal.org, { type: 'request-cancelled', actor: `consumer:${principal.id}`, subjects: [id] }, now);
    return 'won';
  });
  if (outcome !== 'won') {
    if (outcome === 'expired') throw conflict('request_expired', `request ${id} has expired`);
    throw conflict('request_settled', `request ${id} is already ${outcome}`);
  }
  await announceSettled(ctx, principal.org, id);
  return { request: id, state: 'cancelled' };
}

/**
 * Records that an eligible device refused a request because it failed
 * verification there. The request stays pending for the other devices and
 * ends as `refused` once every eligible device has refused. A refusal is not
 * signed: the request failed verification, so there is nothing trustworthy
 * to bind a signature to.
 */
export async function refuseRequest(ctx: BrokerContext, principal: Principal, id: string, input: unknown): Promise<unknown> {
  if (principal.role !== 'device') throw forbidden('only devices refuse requests');
  const { code, ...rest } = requireRecord(input, 'body');
  if (Object.keys(rest).length > 0) throw new BrokerError(400, 'invalid_request', `unknown field ${JSON.stringify(Object.keys(rest)[0])}; expected code`);
  if (typeof code !== 'string' || !REFUSAL_CODE_PATTERN.test(code)) {
    throw new BrokerError(400, 'invalid_request', 'code must be an error code of 1 to 64 lowercase letters, digits and underscores');
  }
  await loadRequest(ctx.db, principal.org, id);
  const delivery = await ctx.db.get('SELECT acked FROM deliveries WHERE org = ? AND request_id = ? AND device = ?', [principal.org, id, principal.id]);
  if (delivery === undefined) throw new BrokerError(403, 'not_eligible', `device ${principal.id} is not an eligible approver of request ${id}`);
  await settleIfTimedOut(ctx, principal.org, id);
  const now = nowSeconds();
  const outcome = await ctx.db.write(async (tx) => {
    const row = await loadRequest(tx, principal.org, id);
    if (row.state !== 'pending') return { state: row.state, ended: false };
    const earlier = await tx.get('SELECT code FROM refusals WHERE org = ? AND request_id = ? AND device = ?', [principal.org, id, principal.id]);
    if (earlier !== undefined) return { state: row.state, ended: false };
    await tx.run('INSERT INTO refusals (org, request_id, device, code, time) VALUES (?, ?, ?, ?, ?)', [principal.org, id, principal.id, code, now]);
    const refused = await tx.get<{ count: number | string }>('SELECT COUNT(*) AS count FROM refusals WHERE org = ? AND request_id = ?', [principal.org, id]);
    let ended = false;
    if (Number(refused?.count ?? 0) >= row.eligible) {
      const won = await tx.run("UPDATE requests SET state = 'refused' WHERE org = ? AND id = ? AND state = 'pending'", [principal.org, id]);
      ended = won.changes === 1;
    }
    await appendAudit(tx, principal.org, { type: 'request-refused', actor: `device:${principal.id}`, subjects: [id, `code:${code}`] }, now);
    return { state: ended ? 'refused' as const : row.state, ended };
  });
  if (outcome.state === 'expired') throw conflict('request_expired', `request ${id} has expired`);
  if (outcome.state !== 'pending' && !outcome.ended) throw conflict('request_settled', `request ${id} is already ${outcome.state}`);
  ctx.logger.info({ event: 'request-refused', org: principal.org, request: id, device: principal.id, code }, 'request refused by a device');
  if (outcome.ended) await announceSettled(ctx, principal.org, id);
  return { request: id, state: outcome.state };
}
