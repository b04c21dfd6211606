// End-to-end tests of the broker: a real broker process per backend, real
// HTTP and WebSocket clients, real signatures and HPKE sealing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, sha256, toBase64Url, utf8Encode, createRevocation} from '../../src/protocol/index.js';
import { BrokerClient, BrokerClientError, type BrokerEvent, type BrokerEventStream } from '../../src/broker/client.js';
import {
  certifyDevice, decide, dropSchema, makeDeviceKeys, makePolicy, makeRequest, makeSecret, makeWorld, now, openRelease, PG_BASE_URL,
  postgresReachable, SECRET_PATH, spawnBroker, uniqueSchema, type BrokerProcess,
} from './fixtures.js';

const pgReachable = await postgresReachable();
const inCi = process.env.CI === 'true';
const backends: { name: string; skip: boolean }[] = [
  { name: 'sqlite', skip: false },
  // In CI an unreachable PostgreSQL must fail the PostgreSQL suite, never skip it.
  { name: 'postgres', skip: !pgReachable && !inCi },
];
if (!pgReachable && !inCi) console.warn('broker postgres tests skipped: PostgreSQL at 127.0.0.1:5432 is unreachable');

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toSatisfy((error: unknown) => error instanceof BrokerClientError && error.code === code);
}

async function nextOfType<T extends BrokerEvent['type']>(stream: BrokerEventStream, type: T, timeoutMs = 10_000): Promise<Extract<BrokerEvent, { type: T }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const event = await stream.next(Math.max(deadline - Date.now(), 1));
    if (event.type === type) return event as Extract<BrokerEvent, { type: T }>;
  }
}

async function waitForState(client: BrokerClient, id: string, state: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await client.getRequest(id)).state === state) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`request ${id} did not reach ${state}`);
}

async function rawPost(url: string, path: string, body: string | Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; json: { error?: { code: string } } }> {
  const response = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body as BodyInit });
  return { status: response.status, json: await response.json() as { error?: { code: string } } };
}

describe.each(backends)('broker on $name', ({ name, skip }) => {
  let broker: BrokerProcess;
  let shortWindow: BrokerProcess;
  let schema: string | null = null;

  beforeAll(async () => {
    if (skip) return;
    let database: string | undefined;
    if (name === 'postgres') {
      schema = uniqueSchema();
      database = `${PG_BASE_URL}?schema=${schema}`;
    }
    broker = await spawnBroker(database === undefined ? {} : { database });
    shortWindow = await spawnBroker({ deliveryWindowSeconds: 1, ...(database === undefined ? {} : { database: `${PG_BASE_URL}?schema=${schema ?? ''}_w` }) });
  });

  afterAll(async () => {
    if (skip) return;
    await broker.stop();
    await shortWindow.stop();
    if (schema !== null) {
      await dropSchema(schema);
      await dropSchema(`${schema}_w`);
    }
  });

  it.skipIf(skip)('enrollment with an invite code', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 1 });
    const code = toBase64Url(globalThis.crypto.getRandomValues(new Uint8Array(16)));
    const inviteId = newId();
    await world.admin.createInvite({ id: inviteId, codeHash: toBase64Url(sha256(utf8Encode(code))), kind: 'device', name: 'ana phone', expires: now() + 600 });

    const keys = await makeDeviceKeys();
    const anonymous = new BrokerClient(broker.url, world.org.trust.org);
    const submission = { inviteId, name: 'ana phone', platform: 'terminal', keys: { signingKey: keys.signing.publicKey.toBase64Url(), sealingKey: keys.sealing.publicKey.toBase64Url() } };
    await expectCode(anonymous.submitEnrollment({ ...submission, code: 'wrong-code' }), 'invite_invalid');
    const { enrollment } = await anonymous.submitEnrollment({ ...submission, code });
    await expectCode(anonymous.submitEnrollment({ ...submission, code }), 'invite_invalid');

    const pending = await world.admin.listEnrollments('pending');
    expect(pending.map((item) => item.id)).toEqual([enrollment]);
    expect(pending[0]?.keys).toEqual(submission.keys);
    expect((await anonymous.pollEnrollment(enrollment, code)).state).toBe('pending');
    await expectCode(anonymous.pollEnrollment(enrollment, 'wrong-code'), 'invite_invalid');

    const wrongKeys = await certifyDevice(world.org, await makeDeviceKeys(), 'impostor');
    await expectCode(world.admin.uploadCertificate(enrollment, wrongKeys.cert), 'key_mismatch');
    const device = await certifyDevice(world.org, keys, 'ana phone');
    await world.admin.uploadCertificate(enrollment, device.cert);
    const done = await anonymous.pollEnrollment(enrollment, code);
    expect(done.state).toBe('done');
    expect(done.certificate).toEqual(device.cert);
    await expectCode(world.admin.uploadCertificate(enrollment, device.cert), 'enrollment_not_pending');

    const deviceClient = new BrokerClient(broker.url, world.org.trust.org);
    await deviceClient.authenticate('device', device.id, keys.signing);
    expect((await deviceClient.listCertificates()).devices.length).toBe(2);
  });

  it.skipIf(skip)('request push approval release', async () => {
    const canary = `canary-${newId()}`;
    const world = await makeWorld(broker.url, { secretText: canary });
    const streams = await Promise.all(world.deviceClients.map((client) => client.connect()));
    const consumerStream = await world.consumerClient.connect();

    const made = await makeRequest(world);
    const created = await world.consumerClient.submitRequest(made.signed);
    expect(created).toEqual({ request: made.signed.body.id, state: 'pending', eligible: 2 });

    const pushed = await Promise.all(streams.map((stream) => nextOfType(stream, 'request')));
    for (const event of pushed) {
      expect(event.request).toBe(made.signed.body.id);
      expect(event.bundle.request).toEqual(made.signed);
      expect(event.bundle.secrets).toEqual([world.secret]);
      expect(event.bundle.consumerCert).toEqual(world.consumer.cert);
    }
    streams[0]?.ack(made.signed.body.id);
    const delivered = await nextOfType(consumerStream, 'delivered');
    expect(delivered).toMatchObject({ delivered: 1, eligible: 2 });

    const device = world.devices[0];
    const bundle = pushed[0]?.bundle;
    if (device === undefined || bundle === undefined) throw new Error('fixture missing');
    const approval = await decide(world, device, bundle);
    expect(await world.deviceClients[0]?.submitApproval(made.signed.body.id, approval)).toEqual({ request: made.signed.body.id, state: 'released' });

    const result = await nextOfType(consumerStream, 'result');
    expect(result.state).toBe('released');
    expect(result.approval).toEqual(approval);
    const plaintexts = await openRelease(world, made, result.approval ?? approval, result.secrets ?? []);
    expect(plaintexts.get(SECRET_PATH)).toBe(canary);
    consumerStream.ack(made.signed.body.id);

    const settled = await nextOfType(streams[1] as BrokerEventStream, 'settled');
    expect(settled).toMatchObject({ state: 'released', settledBy: device.id });
    const status = await world.consumerClient.getRequest(made.signed.body.id);
    expect(status.state).toBe('released');
    expect(status.approval).toEqual(approval);

    for (const stream of [...streams, consumerStream]) await stream.close();
  });

  it.skipIf(skip)('approval race has one winner', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 8 });
    const made = await makeRequest(world);
    await world.consumerClient.submitRequest(made.signed);
    const approvals = await Promise.all(world.devices.map(async (device, index) => {
      const bundles = await world.deviceClients[index]?.listPendingRequests() ?? [];
      expect(bundles).toHaveLength(1);
      return decide(world, device, bundles[0] as (typeof bundles)[number]);
    }));
    const outcomes = await Promise.allSettled(world.deviceClients.map((client, index) =>
      client.submitApproval(made.signed.body.id, approvals[index] as (typeof approvals)[number])));
    const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const lost = outcomes.filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(7);
    for (const outcome of lost) expect((outcome.reason as BrokerClientError).code).toBe('request_settled');

    const { entries } = await world.admin.auditEntries();
    expect(entries.filter((item) => item.entry.type === 'approval-accepted')).toHaveLength(1);
    expect(entries.filter((item) => item.entry.type === 'approval-rejected')).toHaveLength(7);
  });

  it.skipIf(skip)('denial ends the request', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 2 });
    const made = await makeRequest(world);
    await world.consumerClient.submitRequest(made.signed);
    const [bundle] = await world.deviceClients[0]?.listPendingRequests() ?? [];
    if (bundle === undefined || world.devices[0] === undefined || world.devices[1] === undefined) throw new Error('no bundle');
    const denial = await decide(world, world.devices[0], bundle, 'deny');
    expect((await world.deviceClients[0]?.submitApproval(made.signed.body.id, denial))?.state).toBe('denied');
    const status = await world.consumerClient.getRequest(made.signed.body.id);
    expect(status.state).toBe('denied');
    expect(status.secrets).toBeNull();
    const late = await decide(world, world.devices[1], bundle);
    await expectCode(world.deviceClients[1]?.submitApproval(made.signed.body.id, late) ?? Promise.resolve(), 'request_settled');
  });

  it.skipIf(skip)('expiry ends the request', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 1 });
    const made = await makeRequest(world, { expires: now() + 2 });
    await world.consumerClient.submitRequest(made.signed);
    await world.deviceClients[0]?.acknowledgeRequest(made.signed.body.id);
    const consumerStream = await world.consumerClient.connect();
    const result = await nextOfType(consumerStream, 'result', 8000);
    expect(result).toMatchObject({ request: made.signed.body.id, state: 'expired', reason: 'expired' });
    expect((await world.consumerClient.getRequest(made.signed.body.id)).state).toBe('expired');
    await consumerStream.close();
  });

  it.skipIf(skip)('undelivered request fails fast', async () => {
    const world = await makeWorld(shortWindow.url, { deviceCount: 2 });
    const made = await makeRequest(world);
    const started = Date.now();
    await world.consumerClient.submitRequest(made.signed);
    await waitForState(world.consumerClient, made.signed.body.id, 'undelivered', 5000);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it.skipIf(skip)('redelivery until acknowledged', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 1 });
    const made = await makeRequest(world);
    await world.consumerClient.submitRequest(made.signed);
    const client = world.deviceClients[0] as BrokerClient;

    const first = await client.connect();
    expect((await nextOfType(first, 'request')).request).toBe(made.signed.body.id);
    await first.close();

    const second = await client.connect();
    expect((await nextOfType(second, 'request')).request).toBe(made.signed.body.id);
    second.ack(made.signed.body.id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await second.close();
    expect((await world.consumerClient.getRequest(made.signed.body.id)).delivered).toBe(1);

    const third = await client.connect();
    await expect(third.next(700)).rejects.toSatisfy((error: unknown) => error instanceof BrokerClientError && error.code === 'timeout');
    await third.close();
  });

  it.skipIf(skip)('orgs are isolated', async () => {
    const a = await makeWorld(broker.url, { deviceCount: 1 });
    const b = await makeWorld(broker.url, { deviceCount: 1 });
    const made = await makeRequest(a);
    await a.consumerClient.submitRequest(made.signed);

    const crossAdmin = new BrokerClient(broker.url, a.org.trust.org);
    await expect(crossAdmin.authenticate('admin', a.org.trust.org, b.org.identity)).rejects.toBeInstanceOf(BrokerClientError);
    const bToken = b.admin.token ?? '';
    for (const path of ['/certificates', '/policies', '/audit/head', `/requests/${made.signed.body.id}`, `/secrets?path=${SECRET_PATH}`]) {
      const response = await fetch(`${broker.url}/v1/orgs/${a.org.trust.org}${path}`, { headers: { authorization: `Bearer ${bToken}` } });
      expect(response.status, path).toBe(403);
    }
    await expectCode(b.consumerClient.getRequest(made.signed.body.id), 'not_found');
    expect(await b.deviceClients[0]?.listPendingRequests()).toEqual([]);
    const bCerts = await b.admin.listCertificates();
    expect(bCerts.devices.map((cert) => cert.body.org)).toEqual([b.org.trust.org]);
    const bAudit = await b.admin.auditEntries();
    expect(bAudit.entries.every((item) => !JSON.stringify(item.entry).includes(a.org.trust.org))).toBe(true);
    // A certificate signed by org A cannot be stored under org B.
    await expectCode(b.admin.putCertificate(a.devices[0]?.cert as NonNullable<(typeof a.devices)[0]>['cert']), 'wrong_org');
  });

  it.skipIf(skip)('rollback and limits are rejected', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 1 });
    await expectCode(world.admin.putPolicy(world.policy), 'policy_rollback');
    await expectCode(world.admin.putSecret(world.secret), 'secret_rollback');
    const newer = await makePolicy(world.org, world.devices, [world.consumer], 2);
    await world.admin.putPolicy(newer);
    const secret2 = await makeSecret(world.org, newer, world.devices, SECRET_PATH, 2, 'v2');
    await world.admin.putSecret(secret2);
    expect((await world.consumerClient.getSecrets([SECRET_PATH]))[0]?.body.version).toBe(2);

    const wrongConsumer = await makeRequest(world, { consumer: newId() });
    await expectCode(world.consumerClient.submitRequest(wrongConsumer.signed), 'binding_mismatch');
    const missing = await makeRequest(world, { paths: ['prod/db/missing'] });
    await expectCode(world.consumerClient.submitRequest(missing.signed), 'secret_not_found');
    const uncovered = await makeRequest(world, { paths: ['prod/db/url'], id: newId() });
    await world.consumerClient.submitRequest(uncovered.signed);
    await expectCode(world.consumerClient.submitRequest(uncovered.signed), 'duplicate_request');
  });

  it.skipIf(skip)('pending limit per consumer', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 1 });
    for (let i = 0; i < 16; i++) await world.consumerClient.submitRequest((await makeRequest(world)).signed);
    await expectCode(world.consumerClient.submitRequest((await makeRequest(world)).signed), 'too_many_pending');
  });

  it.skipIf(skip)('revocation closes sessions', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 1 });
    const device = world.devices[0];
    if (device === undefined) throw new Error('no device');
    const stream = await world.deviceClients[0]?.connect();
    const revocation = await createRevocation(world.org.identity, { subject: 'device', id: device.id, reason: 'lost phone', revoked: now() });
    await world.admin.putRevocation(revocation);
    expect((await stream?.closed)?.code).toBe(4403);
    await expectCode(world.deviceClients[0]?.listPendingRequests() ?? Promise.resolve(), 'unauthorized');
    const again = new BrokerClient(broker.url, world.org.trust.org);
    await expectCode(again.authenticate('device', device.id, device.signing), 'auth_failed');
    await expectCode(world.admin.putCertificate(device.cert), 'revoked');
  });

  it.skipIf(skip)('bad bodies and frames get 4xx', async () => {
    const world = await makeWorld(broker.url, { deviceCount: 1 });
    const auth = { authorization: `Bearer ${world.consumerClient.token ?? ''}` };
    const path = `/v1/orgs/${world.org.trust.org}/requests`;

    const oversized = await rawPost(broker.url, path, new Uint8Array(300 * 1024).fill(0x20), auth);
    expect(oversized.status).toBe(413);
    expect(oversized.json.error?.code).toBe('payload_too_large');
    const malformed = await rawPost(broker.url, path, '{"request": ', auth);
    expect(malformed.status).toBe(400);
    expect(malformed.json.error?.code).toBe('invalid_json');
    for (const body of ['null', '[]', '{"request": 5}', '{"request": {"body": {}, "signer": "x", "sig": "y"}}', '"text"']) {
      const response = await rawPost(broker.url, path, body, auth);
      expect(response.status, body).toBeGreaterThanOrEqual(400);
      expect(response.status, body).toBeLessThan(500);
      expect(typeof response.json.error?.code, body).toBe('string');
    }
    const unauthenticated = await rawPost(broker.url, path, '{}');
    expect(unauthenticated.status).toBe(401);
    const badToken = await rawPost(broker.url, path, '{}', { authorization: 'Bearer nonsense' });
    expect(badToken.json.error?.code).toBe('unauthorized');
    expect((await fetch(`${broker.url}/v1/nowhere`)).status).toBe(404);
    expect((await fetch(`${broker.url}/v1/orgs/${world.org.trust.org}/requests/a%20b`, { headers: auth })).status).toBe(400);

    const stream = await world.consumerClient.connect() as BrokerEventStream & { send(message: unknown): void };
    stream.send('not an object');
    expect((await stream.next(3000)).type).toBe('error');
    stream.send({ type: 'ack', request: 5 });
    expect((await stream.next(3000)).type).toBe('error');
    stream.send({ type: 'x', padding: 'a'.repeat(300 * 1024) });
    expect((await stream.closed).code).toBe(1009);

    const health = await fetch(`${broker.url}/healthz`);
    expect(await health.json()).toEqual({ ok: true });
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics).toContain('stillvault_broker_errors_total{code="payload_too_large"}');
    expect(metrics).toContain('stillvault_broker_pending_requests');
  });
});
