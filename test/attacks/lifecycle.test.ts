// Approvals that come too late or from the wrong place: a revoked device,
// a request already denied or expired, and a lease asked for by another
// executable of the same user.
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  approveRequest, verifyConsumerCert, verifyDeviceCert, verifyPolicy, verifyRequest, verifySecret,
  type ApprovalBody, type Signed,
} from '../../src/protocol/index.js';
import type { RequestBundle } from '../../src/broker/client.js';
import { BrokerClientError } from '../../src/broker/client.js';
import {
  denyPending, logEvents, makeWorld, now, requestIdIn, revokeLease, SECRET_PATH, startRequest, type Output, type World,
} from './world.js';

let world: World;

function expectNothingReleased(output: Output): void {
  expect(output.code).not.toBe(0);
  expect(output.stdout).not.toContain(world.canary);
  expect(output.stderr).not.toContain(world.canary);
}

/** Fetches the bundle of a pending request straight from the broker, as approver `name` would receive it. */
async function bundleOf(name: string, request: string): Promise<RequestBundle> {
  const bundles = await (await world.deviceClient(name)).listPendingRequests();
  const bundle = bundles.find((item) => item.request.body.id === request);
  if (bundle === undefined) throw new Error(`request ${request} is not pending for ${name}`);
  return bundle;
}

/** Signs an approval of `bundle` with approver `name`'s own keys, whatever state the broker reports for the request. */
async function approvalBy(name: string, bundle: RequestBundle): Promise<Signed<ApprovalBody>> {
  const trust = world.trust;
  const time = now();
  const deviceCert = await verifyDeviceCert(world.approverState(name).certificate, trust, time);
  const consumerCert = await verifyConsumerCert(bundle.consumerCert, trust, time);
  const request = await verifyRequest(bundle.request, trust, consumerCert, time);
  const policy = await verifyPolicy(bundle.policy, trust, { minVersion: 0 });
  const secrets = await Promise.all(bundle.secrets.map((secret) => verifySecret(secret, trust, policy, { minVersion: 0 })));
  const keys = await world.deviceKeys(name);
  try {
    return await approveRequest({ deviceKey: keys.signing, sealingKey: keys.sealing, deviceCert, request, secrets, leaseSeconds: 60, created: time, auditHead: null });
  } finally {
    keys.wipe();
  }
}

function daemonEvents(request: string): Record<string, unknown>[] {
  return logEvents(world.daemon.stderr()).filter((event) => event.request === request);
}

async function waitForDaemonEvent(request: string, event: string): Promise<void> {
  await world.daemon.waitForStderr(new RegExp(`"event":"${event}"[^\\n]*"request":"${request}"|"request":"${request}"[^\\n]*"event":"${event}"`), 10_000);
}

describe('approvals out of time and place', () => {
  beforeAll(async () => {
    world = await makeWorld({ approvers: ['alice', 'ben'], requestTimeout: 8 });
  }, 120_000);

  afterEach(async () => {
    world.relay.hooks = {};
    await denyPending(world, 'alice');
  });

  afterAll(async () => {
    await world.stop();
  });

  it('other executable cannot use a lease', async () => {
    const first = world.agent(['get', SECRET_PATH, '--lease', '120', '--reason', 'lease owner']);
    await first.waitForStderr('waiting for a decision');
    await world.approve('alice', ['y']);
    const owner = await first.done;
    expect(owner.stdout).toBe(world.canary);
    const lease = /request (\S+) sent to/.exec(owner.stderr)?.[1] ?? '';

    // The same executable is served from the lease without a new request.
    const again = await world.agent(['get', SECRET_PATH, '--reason', 'lease owner again']).done;
    expect(again.stdout).toBe(world.canary);
    expect(again.stderr).not.toContain('waiting for a decision');

    try {
      const otherNode = join(world.dir, 'other-node');
      copyFileSync(process.execPath, otherNode);
      const other = world.agent(['get', SECRET_PATH, '--reason', 'same user, other executable'], { node: otherNode });
      await other.waitForStderr('waiting for a decision');
      const request = requestIdIn(other.stderr());
      await waitForDaemonEvent(request, 'request-submitted');
      expect(daemonEvents(request).find((event) => event.event === 'request-submitted')?.exe).toBe(otherNode);
      await denyPending(world, 'alice');
      const output = await other.done;
      expectNothingReleased(output);
      expect(output.code).toBe(3);
    } finally {
      // A lease left behind would serve the next tests' agents.
      expect(await revokeLease(world, lease)).toBe(200);
    }
  });

  it('approval by revoked device is refused', async () => {
    const { agent, request } = await startRequest(world, 'approval by a revoked device');
    const bundle = await bundleOf('alice', request);
    await world.cliOk(world.admin, ['approver', 'revoke', 'ben', '--reason', 'laptop stolen']);

    // The revoked device can no longer reach the broker ...
    const refused = await world.approve('ben', ['y']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('auth_failed');
    // ... so the malicious broker delivers the approval its stolen keys made.
    const approval = await approvalBy('ben', bundle);
    world.relay.inject('consumer', { type: 'result', request, state: 'released', approval, secrets: bundle.secrets });

    const output = await agent.done;
    expectNothingReleased(output);
    expect(output.stderr).toContain('(revoked)');
    expect(daemonEvents(request)).toContainEqual(expect.objectContaining({ event: 'request-failed', code: 'revoked' }));
  });

  it('approval after denial is refused', async () => {
    const { agent, request } = await startRequest(world, 'approval after a denial');
    const bundle = await bundleOf('alice', request);
    const decided = await world.approve('alice', ['n']);
    expect(decided.outcomes).toEqual([expect.objectContaining({ request, result: 'denied' })]);
    const output = await agent.done;
    expect(output.code).toBe(3);
    expectNothingReleased(output);

    // The broker keeps the first decision.
    const late = await approvalBy('alice', bundle);
    const client = await world.deviceClient('alice');
    const rejected = await client.submitApproval(request, late).then(() => undefined, (error: unknown) => error);
    expect(rejected).toBeInstanceOf(BrokerClientError);
    expect((rejected as BrokerClientError).code).toBe('request_settled');

    // The approver refuses to decide it again when the relay shows it as pending.
    world.relay.hooks.httpResponse = (call, body, status) => {
      if (call.method === 'GET' && call.url.endsWith('/requests?state=pending')) return { requests: [bundle] };
      if (call.method === 'GET' && call.url.endsWith(`/requests/${request}`) && status === 200) {
        return { request: { ...(body as { request: object }).request, state: 'pending', approval: null, secrets: null } };
      }
      return body;
    };
    const again = await world.approve('alice', ['y']);
    expect(again.outcomes).toEqual([expect.objectContaining({ request, result: 'refused', code: 'request_replayed' })]);

    // The daemon takes one outcome per request: a release delivered after the denial is ignored.
    world.relay.inject('consumer', { type: 'result', request, state: 'released', approval: late, secrets: bundle.secrets });
    await waitForDaemonEvent(request, 'result-ignored');
    expect(daemonEvents(request).map((event) => event.event)).not.toContain('request-released');
  });

  it('approval after expiry is refused', async () => {
    const { agent, request } = await startRequest(world, 'approval after expiry');
    const bundle = await bundleOf('alice', request);
    const output = await agent.done;
    expect(output.code).toBe(4);
    expect(output.stderr).toContain('(request_expired)');
    expectNothingReleased(output);

    const late = await approvalBy('alice', bundle);
    const client = await world.deviceClient('alice');
    const rejected = await client.submitApproval(request, late).then(() => undefined, (error: unknown) => error);
    expect((rejected as BrokerClientError).code).toBe('request_expired');

    world.relay.inject('consumer', { type: 'result', request, state: 'released', approval: late, secrets: bundle.secrets });
    await waitForDaemonEvent(request, 'result-ignored');
    expect(daemonEvents(request).map((event) => event.event)).not.toContain('request-released');
  }, 40_000);
});
