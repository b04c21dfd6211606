// A malicious broker rewrites what it relays: the request an approver is
// shown, the result a daemon receives, the versions and certificates either
// side is served. Every party is a real process; the relay sits between
// them and the real broker.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createRequest, issueDeviceCert, SealingPrivateKey, signApproval, signObject, signPolicy, SigningPrivateKey,
  type ApprovalBody, type ConsumerCertBody, type DeviceCertBody, type PolicyBody, type RequestBody, type SecretBody, type Signed,
} from '../../src/protocol/index.js';
import type { HttpCall, WsMessage } from './relay.js';
import {
  canaryValue, defined, denyPending, failuresOf, getCanary, makeWorld, now, POLICY, recordedBodies, revokeLease, SECRET_PATH, startRequest,
  type Output, type World,
} from './world.js';

type Bundle = { request: Signed<RequestBody>; policy: Signed<PolicyBody>; secrets: Signed<SecretBody>[]; consumerCert: Signed<ConsumerCertBody> };

const PENDING = /\/requests\?state=pending$/;
const STATUS = /\/requests\/[A-Za-z0-9_-]+$/;

let world: World;
/** Every canary value the secret has had, so no version can leak unnoticed. */
const canaries: string[] = [];

function expectNothingReleased(output: Output): void {
  expect(output.code).not.toBe(0);
  for (const canary of canaries) expect(output.stdout).not.toContain(canary);
  for (const canary of canaries) expect(output.stderr).not.toContain(canary);
}

/** Rewrites each bundle of the approver's pending list. */
function rewriteBundles(rewrite: (bundle: Bundle) => Bundle): void {
  world.relay.hooks.httpResponse = (call: HttpCall, body: unknown, status: number) => {
    if (call.method !== 'GET' || !PENDING.test(call.url) || status !== 200) return body;
    return { requests: (body as { requests: Bundle[] }).requests.map(rewrite) };
  };
}

/** Rewrites every `result` message and request status the daemon receives. */
function rewriteResults(rewrite: (result: Record<string, unknown>) => Record<string, unknown>): void {
  world.relay.hooks.wsToClient = (message: WsMessage) => [message.type === 'result' ? rewrite(message) as WsMessage : message];
  world.relay.hooks.httpResponse = (call: HttpCall, body: unknown, status: number) => {
    if (call.method !== 'GET' || !STATUS.test(call.url) || status !== 200) return body;
    const requestStatus = (body as { request: Record<string, unknown> }).request;
    return { request: requestStatus.state === 'released' ? rewrite(requestStatus) : requestStatus };
  };
}

/** Runs one honest release, so both the approver and the daemon record the versions they saw. */
async function honestRelease(approver: string): Promise<void> {
  const { agent, request } = await startRequest(world, 'honest release');
  const decided = await world.approve(approver, ['y']);
  expect(decided.outcomes[0]?.result, decided.stderr).toBe('approved');
  const output = await agent.done;
  expect(output.code).toBe(0);
  expect(output.stdout).toBe(canaries.at(-1));
  expect(await revokeLease(world, request)).toBe(200);
}

/** Returns the secret versions the admin stored, oldest first, as the relay saw them pass. */
function storedSecrets(): Signed<SecretBody>[] {
  return recordedBodies(world, (entry) => entry.direction === 'to-broker' && entry.method === 'PUT' && (entry.url ?? '').endsWith('/secrets'))
    .map((body) => (body as { secret: Signed<SecretBody> }).secret);
}

function storedPolicies(): Signed<PolicyBody>[] {
  return recordedBodies(world, (entry) => entry.direction === 'to-broker' && entry.method === 'PUT' && (entry.url ?? '').endsWith('/policies'))
    .map((body) => (body as { policy: Signed<PolicyBody> }).policy);
}

/** Returns the releases of earlier requests, as the daemon received them. */
function recordedResults(): WsMessage[] {
  return recordedBodies(world, (entry) => entry.channel === 'ws' && entry.role === 'consumer' && (entry.body as WsMessage).type === 'result'
    && (entry.body as WsMessage).state === 'released') as WsMessage[];
}

describe('a malicious relay between the parties and the broker', () => {
  beforeAll(async () => {
    world = await makeWorld({ approvers: ['alice', 'ben'] });
    canaries.push(world.canary);
  }, 120_000);

  afterEach(async () => {
    world.relay.hooks = {};
    await denyPending(world, 'ben');
  });

  afterAll(async () => {
    await world.stop();
  });

  it('honest relay releases the canary', async () => {
    await honestRelease('alice');
  });

  it('ephemeral key swap in bundle is refused', async () => {
    const attacker = await SealingPrivateKey.generate('request-ephemeral');
    const { agent, request } = await startRequest(world, 'ephemeral key swap');
    rewriteBundles((bundle) => ({ ...bundle, request: { ...bundle.request, body: { ...bundle.request.body, ephemeralKey: attacker.publicKey.toBase64Url() } } }));

    const decided = await world.approve('alice', ['y']);

    expect(decided.code).toBe(3);
    expect(decided.outcomes).toEqual([expect.objectContaining({ request, result: 'refused', code: 'bad_signature' })]);
    world.relay.hooks = {};
    await denyPending(world, 'ben');
    expectNothingReleased(await agent.done);
    const approvals = recordedBodies(world, (entry) => entry.direction === 'to-broker' && entry.method === 'POST' && (entry.url ?? '').endsWith(`/requests/${request}/approvals`));
    expect(approvals.map((body) => (body as { approval: Signed<ApprovalBody> }).approval.body.decision)).toEqual(['deny']);
  });

  it('ephemeral key swap in submission is refused', async () => {
    const attacker = await SealingPrivateKey.generate('request-ephemeral');
    world.relay.hooks.httpRequest = (call, body) => {
      if (call.method !== 'POST' || !call.url.endsWith('/requests')) return body;
      const signed = (body as { request: Signed<RequestBody> }).request;
      return { request: { ...signed, body: { ...signed.body, ephemeralKey: attacker.publicKey.toBase64Url() } } };
    };

    const output = await getCanary(world, 'ephemeral key swap on submit').done;

    expectNothingReleased(output);
    expect(output.stderr).toContain('(bad_signature)');
    expect(world.broker.stderr()).toContain('bad_signature');
  });

  it('edited display fields are refused', async () => {
    const edits: [string, (body: RequestBody) => RequestBody, string][] = [
      ['path', (body) => ({ ...body, paths: ['attack/harmless'] }), 'attack/harmless'],
      ['host', (body) => ({ ...body, host: 'trusted-build-box' }), 'trusted-build-box'],
      ['executable', (body) => ({ ...body, requester: { ...body.requester, exe: '/usr/bin/innocent' } }), '/usr/bin/innocent'],
      ['lease', (body) => ({ ...body, leaseSeconds: 240 }), '4m asked'],
      ['reason', (body) => ({ ...body, reason: 'routine read-only check' }), 'routine read-only check'],
    ];
    for (const [field, edit, shown] of edits) {
      // An approver is not shown a request again after refusing it, so each edit gets its own request.
      const { agent, request } = await startRequest(world, `display binding: ${field}`);
      rewriteBundles((bundle) => ({ ...bundle, request: { ...bundle.request, body: edit(bundle.request.body) } }));
      const decided = await world.approve('alice', ['y']);
      expect(decided.code, field).toBe(3);
      expect(decided.outcomes, field).toEqual([expect.objectContaining({ request, result: 'refused', code: 'bad_signature' })]);
      expect(decided.stderr, field).not.toContain(shown);
      world.relay.hooks = {};
      await denyPending(world, 'ben');
      const output = await agent.done;
      expectNothingReleased(output);
      expect(output.stderr, field).toContain('denied by ben');
    }
  });

  it('replayed result of an earlier request is refused', async () => {
    const old = defined(recordedResults().at(-1), 'a recorded release');
    const { agent, request } = await startRequest(world, 'replayed result');
    // The stored result, retargeted at the new request id.
    expect(world.relay.inject('consumer', { ...old, request })).toBe(1);

    const output = await agent.done;

    expectNothingReleased(output);
    expect(output.stderr).toContain('(binding_mismatch)');
    expect(failuresOf(world, request)).toEqual([expect.objectContaining({ code: 'binding_mismatch' })]);
  });

  it('replayed approval with a new request id is refused', async () => {
    const old = defined(recordedResults().at(-1), 'a recorded release');
    const { agent, request } = await startRequest(world, 'replayed approval');
    const approval = old.approval as Signed<ApprovalBody>;
    world.relay.inject('consumer', { ...old, request, approval: { ...approval, body: { ...approval.body, request } } });

    const output = await agent.done;

    expectNothingReleased(output);
    expect(output.stderr).toContain('(bad_signature)');
    expect(failuresOf(world, request)).toEqual([expect.objectContaining({ code: 'bad_signature' })]);
  });

  it('older secret version is refused by the approver', async () => {
    canaries.push(canaryValue());
    await world.cliOk(world.admin, ['secret', 'set', SECRET_PATH, '--policy', POLICY], canaries.at(-1));
    await honestRelease('alice');
    const first = defined(storedSecrets()[0], 'secret version 1');
    const { agent, request } = await startRequest(world, 'rollback to the approver');
    rewriteBundles((bundle) => ({ ...bundle, secrets: [first] }));

    const decided = await world.approve('alice', ['y']);

    expect(decided.code).toBe(3);
    expect(decided.outcomes).toEqual([expect.objectContaining({ request, result: 'refused', code: 'secret_rollback' })]);
    // The agent stops, so its daemon cancels the request: ben must not see version 2 before the next test.
    world.relay.hooks = {};
    await agent.stop();
    expectNothingReleased(await agent.done);
  });

  it('older secret version is refused by the daemon', async () => {
    const first = defined(storedSecrets()[0], 'secret version 1');
    const { agent, request } = await startRequest(world, 'rollback to the daemon');
    // ben never saw version 2, so he is shown version 1 and approves it; the daemon has seen version 2.
    rewriteBundles((bundle) => ({ ...bundle, secrets: [first] }));
    const bundles = defined(world.relay.hooks.httpResponse, 'the bundle rewrite');
    rewriteResults((result) => ({ ...result, secrets: [first] }));
    const results = defined(world.relay.hooks.httpResponse, 'the result rewrite');
    world.relay.hooks.httpResponse = (call, body, status) => results(call, bundles(call, body, status), status);

    const decided = await world.approve('ben', ['y']);
    expect(decided.outcomes).toEqual([expect.objectContaining({ request, result: 'approved' })]);
    const output = await agent.done;

    expectNothingReleased(output);
    expect(output.stderr).toContain('(secret_rollback)');
    expect(failuresOf(world, request)).toEqual([expect.objectContaining({ code: 'secret_rollback' })]);
  });

  it('secret not signed by the org is refused', async () => {
    const rogue = await SigningPrivateKey.generate('org-identity');
    const cases: [string, (secret: Signed<SecretBody>) => Promise<Signed<SecretBody>>, string][] = [
      ['edited body', (secret) => Promise.resolve({ ...secret, body: { ...secret.body, created: secret.body.created + 1 } }), 'bad_signature'],
      ['signed by another key', (secret) => signObject(secret.body, rogue), 'untrusted_signer'],
    ];
    for (const [label, forge, code] of cases) {
      // An approver is not shown a request again after refusing it, so each case gets its own request.
      const { agent, request } = await startRequest(world, `unsigned secret: ${label}`);
      const latest = defined(storedSecrets().at(-1), 'the latest secret version');
      const forged = await forge(latest);
      rewriteBundles((bundle) => ({ ...bundle, secrets: [forged] }));
      const decided = await world.approve('alice', ['y']);
      expect(decided.outcomes, label).toEqual([expect.objectContaining({ request, result: 'refused', code })]);
      world.relay.hooks = {};
      await denyPending(world, 'ben');
      expectNothingReleased(await agent.done);
    }
  });

  it('secret edited in the result is refused', async () => {
    rewriteResults((result) => {
      const secret = defined((result.secrets as Signed<SecretBody>[])[0], 'the released secret version');
      return { ...result, secrets: [{ ...secret, body: { ...secret.body, created: secret.body.created + 1 } }] };
    });
    const { agent, request } = await startRequest(world, 'edited secret in the result');
    const decided = await world.approve('alice', ['y']);
    expect(decided.outcomes).toEqual([expect.objectContaining({ request, result: 'approved' })]);

    const output = await agent.done;

    expectNothingReleased(output);
    expect(output.stderr).toContain('(bad_signature)');
  });

  it('forged device certificate is refused by the daemon', async () => {
    const rogueOrg = await SigningPrivateKey.generate('org-identity');
    const rogueDevice = await SigningPrivateKey.generate('device-signing');
    const alice = world.approverState('alice');
    const real = defined(alice.certificate ?? undefined, 'alice\'s certificate').body;
    const forgedCert = await issueDeviceCert(rogueOrg, {
      device: real.device, name: real.name, platform: real.platform, signingKey: rogueDevice.publicKey.toBase64Url(), sealingKey: real.sealingKey,
      issued: real.issued, expires: real.expires,
    });
    // The forged certificate claims the real org, re-signed by the rogue key.
    const claimed = await signObject({ ...forgedCert.body, org: world.trust.org }, rogueOrg);
    world.relay.hooks.httpResponse = (call, body, status) => {
      if (call.method !== 'GET' || !call.url.endsWith('/certificates') || status !== 200) return body;
      const listing = body as { devices: Signed<DeviceCertBody>[]; consumers: unknown[] };
      return { ...listing, devices: listing.devices.map((cert) => (cert.body.device === real.device ? claimed : cert)) };
    };
    const resign = async (result: Record<string, unknown>): Promise<Record<string, unknown>> => {
      const approval = result.approval as Signed<ApprovalBody>;
      const { v: _v, kind: _kind, ...fields } = approval.body;
      return { ...result, approval: await signApproval(rogueDevice, fields) };
    };
    // The rogue device signs the approval the broker received, so it matches the forged certificate's key.
    world.relay.hooks.wsToClient = (message) => {
      if (message.type !== 'result') return [message];
      void resign(message).then((forged) => world.relay.inject('consumer', forged as WsMessage));
      return [];
    };
    const { agent, request } = await startRequest(world, 'forged device certificate');
    await world.approve('alice', ['y']);

    const output = await agent.done;

    expectNothingReleased(output);
    expect(output.stderr).toContain('(untrusted_signer)');
    expect(failuresOf(world, request)).toEqual([expect.objectContaining({ code: 'untrusted_signer' })]);
  });

  it('forged consumer certificate is refused by the approver', async () => {
    const rogueOrg = await SigningPrivateKey.generate('org-identity');
    const rogueHost = await SigningPrivateKey.generate('consumer-host');
    const { agent, request } = await startRequest(world, 'forged consumer certificate');
    const pending = (await (await world.deviceClient('alice')).listPendingRequests()) as unknown as Bundle[];
    const bundle = defined(pending.find((item) => item.request.body.id === request), `the bundle of ${request}`);
    const forgedCert = await signObject({ ...bundle.consumerCert.body, hostKey: rogueHost.publicKey.toBase64Url() }, rogueOrg);
    const { v: _v, kind: _kind, ...fields } = bundle.request.body;
    const forgedRequest = await createRequest(rogueHost, { ...fields, requester: { ...fields.requester, exe: '/usr/bin/innocent' } });
    rewriteBundles((item) => ({ ...item, consumerCert: forgedCert, request: forgedRequest }));

    const decided = await world.approve('alice', ['y']);

    expect(decided.code).toBe(3);
    expect(decided.outcomes).toEqual([expect.objectContaining({ request, result: 'refused', code: 'untrusted_signer' })]);
    world.relay.hooks = {};
    await denyPending(world, 'ben');
    expectNothingReleased(await agent.done);
  });

  it('lower policy version is refused by both', async () => {
    // Policy version 2 needs a new secret version sealed under it; one honest release records both.
    await world.cliOk(world.admin, ['policy', 'set', POLICY, '--paths', 'attack/**', '--approvers', 'alice,ben', '--max-lease', '5m', '--consumers', 'agent-host']);
    canaries.push(canaryValue());
    await world.cliOk(world.admin, ['secret', 'set', SECRET_PATH, '--policy', POLICY], canaries.at(-1));
    await honestRelease('alice');
    const first = defined(storedPolicies()[0], 'policy version 1');
    expect(first.body.version).toBe(1);

    const shownToApprover = await startRequest(world, 'policy rollback to the approver');
    rewriteBundles((bundle) => ({ ...bundle, policy: first }));
    const decided = await world.approve('alice', ['y']);
    expect(decided.outcomes).toEqual([expect.objectContaining({ request: shownToApprover.request, result: 'refused', code: 'policy_rollback' })]);
    world.relay.hooks = {};
    await denyPending(world, 'ben');
    expectNothingReleased(await shownToApprover.agent.done);

    world.relay.hooks.httpResponse = (call, body, status) => {
      if (call.method !== 'GET' || !call.url.endsWith('/policies') || status !== 200) return body;
      return { policies: [first] };
    };
    const shownToDaemon = await startRequest(world, 'policy rollback to the daemon');
    await world.approve('alice', ['y']);
    const output = await shownToDaemon.agent.done;
    expectNothingReleased(output);
    expect(output.stderr).toContain('(policy_rollback)');
    expect(failuresOf(world, shownToDaemon.request)).toEqual([expect.objectContaining({ code: 'policy_rollback' })]);
  });

  it('policy signed by another key is refused', async () => {
    const rogue = await SigningPrivateKey.generate('org-identity');
    const latest = defined(storedPolicies().at(-1), 'the latest policy');
    const { v: _v, kind: _kind, org: _org, ...fields } = latest.body;
    const forged = await signPolicy(rogue, { ...fields, version: fields.version + 1, maxLeaseSeconds: 30 * 24 * 3600, issued: now() });
    const claimed = await signObject({ ...forged.body, org: world.trust.org }, rogue);
    const { agent, request } = await startRequest(world, 'forged policy');
    rewriteBundles((bundle) => ({ ...bundle, policy: claimed }));

    const decided = await world.approve('alice', ['y']);

    expect(decided.outcomes).toEqual([expect.objectContaining({ request, result: 'refused', code: 'untrusted_signer' })]);
    world.relay.hooks = {};
    await denyPending(world, 'ben');
    expectNothingReleased(await agent.done);
  });
});
