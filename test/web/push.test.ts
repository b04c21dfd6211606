// Web Push from a real broker process to a local push service that this test
// runs: an HTTP server that records each POST and responds with scripted
// status codes. The payload is decrypted here with node:crypto following
// RFC 8291, independently of the web-push package the broker uses.
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify, type ECDH } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSecretVersion, createOrg, createRequest, issueConsumerCert, issueDeviceCert, newId, SealingPrivateKey, SecretBytes, signPolicy,
  SigningPrivateKey, verifyDeviceCert, verifyOrg, verifyPolicy, type OrgTrust,
} from '../../src/protocol/index.js';
import { BrokerClient } from '../../src/broker/client.js';
import { DEFAULT_PUSH_OPTIONS, parseSubscription, retryDelay } from '../../src/broker/push.js';
import { buildWebApp } from '../../src/web/build.js';
import { startApproverServer, type RunningApproverServer } from '../../src/web/server.js';
import { describeBrowser, launchBrowser, type Browser } from './browser.js';
import { freePort, spawnBroker, type BrokerProcess } from './helpers.js';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A push service: POST /NAME responds with the next scripted status for NAME (201 when none is left) and records the request. */
interface PushService {
  url: string;
  received: Received[];
  script: Map<string, number[]>;
  close(): Promise<void>;
}

async function startPushService(): Promise<PushService> {
  const service: PushService = { url: '', received: [], script: new Map(), close: () => Promise.resolve() };
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const path = request.url ?? '/';
      service.received.push({ path, headers: request.headers, body: Buffer.concat(chunks) });
      const status = service.script.get(path)?.shift() ?? 201;
      response.writeHead(status, status === 429 ? { 'retry-after': '0' } : {});
      response.end();
    });
  });
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  service.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  service.close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); });
  return service;
}

interface Subscriber {
  ecdh: ECDH;
  auth: Buffer;
}

function newSubscriber(): Subscriber {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { ecdh, auth: randomBytes(16) };
}

/** Decrypts an aes128gcm Web Push message (RFC 8188 framing, RFC 8291 key derivation), one record. */
function decryptPush(body: Buffer, subscriber: Subscriber): string {
  const salt = body.subarray(0, 16);
  const idLength = body.readUInt8(20);
  const senderKey = body.subarray(21, 21 + idLength);
  const ciphertext = body.subarray(21 + idLength);
  const shared = subscriber.ecdh.computeSecret(senderKey);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), subscriber.ecdh.getPublicKey(), senderKey]);
  const ikm = Buffer.from(hkdfSync('sha256', shared, subscriber.auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  const padded = Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - 16)), decipher.final()]);
  const end = padded.lastIndexOf(2);
  expect(padded.subarray(end + 1).every((byte) => byte === 0)).toBe(true);
  return padded.subarray(0, end).toString('utf8');
}

/** Checks the VAPID `authorization: vapid t=JWT, k=KEY` header (RFC 8292): key, audience, expiry and ES256 signature. */
function checkVapid(headers: IncomingHttpHeaders, publicKey: string, audience: string): void {
  const match = /^vapid t=([^,]+), k=(\S+)$/.exec(headers.authorization ?? '');
  expect(match?.[2]).toBe(publicKey);
  const [header = '', claims = '', signature = ''] = (match?.[1] ?? '').split('.');
  const body = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as { aud: string; exp: number; sub: string };
  expect(body.aud).toBe(audience);
  expect(body.exp).toBeGreaterThan(Date.now() / 1000);
  const point = Buffer.from(publicKey, 'base64url');
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, format: 'jwk' });
  expect(verify('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))).toBe(true);
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('push subscription checks', () => {
  const keys = { p256dh: Buffer.alloc(65, 4).toString('base64url'), auth: Buffer.alloc(16, 1).toString('base64url') };

  it('accepts an https push service', () => {
    const parsed = parseSubscription({ endpoint: 'https://fcm.googleapis.com/fcm/send/abc', keys, expirationTime: null }, DEFAULT_PUSH_OPTIONS);
    expect(parsed).toEqual({ endpoint: 'https://fcm.googleapis.com/fcm/send/abc', keys });
  });

  it('rejects local, private and plain http endpoints', () => {
    for (const endpoint of [
      'http://push.example.com/x', 'https://127.0.0.1/x', 'https://10.0.0.5/x', 'https://[::1]/x', 'https://localhost/x',
      'https://metadata/x', 'https://printer.local/x', 'https://user:pw@push.example.com/x', 'not a url',
    ]) {
      expect(() => parseSubscription({ endpoint, keys }, DEFAULT_PUSH_OPTIONS), endpoint).toThrow(expect.objectContaining({ code: 'invalid_request' }));
    }
  });

  it('rejects keys of the wrong length', () => {
    expect(() => parseSubscription({ endpoint: 'https://push.example.com/x', keys: { ...keys, auth: 'AAAA' } }, DEFAULT_PUSH_OPTIONS)).toThrow(/keys.auth/);
    expect(() => parseSubscription({ endpoint: 'https://push.example.com/x', keys: { ...keys, p256dh: 'AAAA' } }, DEFAULT_PUSH_OPTIONS)).toThrow(/keys.p256dh/);
  });

  it('backs off exponentially, honouring Retry-After up to 60 s', () => {
    expect([1, 2, 3].map((attempt) => retryDelay(1000, attempt, null))).toEqual([1000, 2000, 4000]);
    expect(retryDelay(1000, 1, '5')).toBe(5000);
    expect(retryDelay(1000, 1, '3600')).toBe(60_000);
    expect(retryDelay(1000, 2, 'Wed, 21 Oct 2015 07:28:00 GMT')).toBe(2000);
  });
});

describe('Web Push from the broker', () => {
  let broker: BrokerProcess;
  let push: PushService;
  let trust: OrgTrust;
  let phone: BrokerClient;
  let consumer: BrokerClient;
  let consumerHost: SigningPrivateKey;
  let consumerId: string;
  let vapidKey: string;

  beforeAll(async () => {
    push = await startPushService();
    broker = await spawnBroker('http://localhost:1', ['--allow-http-push-endpoints', '--push-retry-base-ms', '100']);

    const identity = await SigningPrivateKey.generate('org-identity');
    const org = await createOrg(identity, { name: 'Acme', created: now() });
    trust = (await verifyOrg(org, identity.publicKey.fingerprint())).trust;
    const admin = new BrokerClient(broker.url, trust.org);
    await admin.registerOrg(org);
    await admin.authenticate('admin', trust.org, identity);

    const signing = await SigningPrivateKey.generate('device-signing');
    const sealing = await SealingPrivateKey.generate('device-sealing');
    const deviceCert = await issueDeviceCert(identity, {
      device: newId(), name: 'ana-phone', platform: 'web', signingKey: signing.publicKey.toBase64Url(), sealingKey: sealing.publicKey.toBase64Url(),
      issued: now() - 10, expires: now() + 86_400,
    });
    await admin.putCertificate(deviceCert);
    consumerHost = await SigningPrivateKey.generate('consumer-host');
    const consumerCert = await issueConsumerCert(identity, { consumer: newId(), name: 'build-01', hostKey: consumerHost.publicKey.toBase64Url(), issued: now() - 10, expires: now() + 86_400 });
    consumerId = consumerCert.body.consumer;
    await admin.putCertificate(consumerCert);
    const policy = await signPolicy(identity, {
      name: 'prod', version: 1, paths: ['prod/**'], approvers: [deviceCert.body.device], quorum: 1, maxLeaseSeconds: 3600,
      consumers: [consumerId], requesters: [{}], issued: now(),
    });
    await admin.putPolicy(policy);
    const devices = [await verifyDeviceCert(deviceCert, trust, now())];
    await admin.putSecret(await buildSecretVersion(identity, {
      policy: await verifyPolicy(policy, trust, { minVersion: 0 }), devices, path: 'prod/db/url', version: 1, created: now(),
      plaintext: SecretBytes.fromString('postgres://not-a-real-secret'),
    }));

    phone = new BrokerClient(broker.url, trust.org);
    await phone.authenticate('device', deviceCert.body.device, signing);
    consumer = new BrokerClient(broker.url, trust.org);
    await consumer.authenticate('consumer', consumerId, consumerHost);
    vapidKey = ((await (await fetch(`${broker.url}/v1/push/vapid-public-key`)).json()) as { publicKey: string }).publicKey;
  });

  afterAll(async () => {
    await broker.stop();
    await push.close();
  });

  async function subscribe(client: BrokerClient, path: string, subscriber: Subscriber, method = 'PUT'): Promise<Response> {
    return fetch(`${broker.url}/v1/orgs/${trust.org}/push-subscription`, {
      method,
      headers: { authorization: `Bearer ${client.token ?? ''}`, 'content-type': 'application/json' },
      body: method === 'DELETE' ? null : JSON.stringify({
        endpoint: `${push.url}${path}`,
        keys: { p256dh: subscriber.ecdh.getPublicKey().toString('base64url'), auth: subscriber.auth.toString('base64url') },
      }),
    });
  }

  async function submitRequest(): Promise<string> {
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const signed = await createRequest(consumerHost, {
      org: trust.org, id: newId(), consumer: consumerId, host: 'build-01', paths: ['prod/db/url'],
      requester: { uid: 1001, gid: 1001, user: 'ci', pid: 4242, exe: '/usr/bin/node', cmdline: ['node', 'deploy.js'] },
      reason: 'Secret reason: migrate prod', leaseSeconds: 600, ephemeralKey: ephemeral.publicKey.toBase64Url(), created: now(), expires: now() + 300, auditHead: null,
    });
    await consumer.submitRequest(signed);
    return signed.body.id;
  }

  function postsTo(path: string): Received[] {
    return push.received.filter((item) => item.path === path);
  }

  it('keeps the VAPID key pair in the data directory with mode 0600', () => {
    expect(vapidKey).toMatch(/^[A-Za-z0-9_-]{87}$/);
    expect(statSync(join(broker.dataDir, 'vapid-keys.json')).mode & 0o777).toBe(0o600);
  });

  it('sends only the request id and a fixed label, encrypted', async () => {
    const subscriber = newSubscriber();
    expect((await subscribe(phone, '/ok', subscriber)).status).toBe(200);
    const id = await submitRequest();
    await waitFor(() => postsTo('/ok').length === 1, 'the push');

    const [sent] = postsTo('/ok');
    if (sent === undefined) throw new Error('no push recorded');
    expect(sent.headers['content-encoding']).toBe('aes128gcm');
    expect(Number(sent.headers.ttl)).toBeGreaterThan(0);
    expect(Number(sent.headers.ttl)).toBeLessThanOrEqual(300);
    expect(sent.headers.urgency).toBe('high');
    checkVapid(sent.headers, vapidKey, push.url);
    expect(sent.body.includes(Buffer.from(id))).toBe(false);
    expect(JSON.parse(decryptPush(sent.body, subscriber))).toEqual({ v: 1, request: id, label: 'Approval requested' });
  });

  it('removes a subscription answered with 410 or 404', async () => {
    for (const status of [410, 404]) {
      const path = `/gone-${status}`;
      push.script.set(path, [status]);
      expect((await subscribe(phone, path, newSubscriber())).status).toBe(200);
      await submitRequest();
      await waitFor(() => broker.logs().includes(`"event":"push-subscription-expired"`) && postsTo(path).length === 1, `the ${status} answer`);
      await submitRequest();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(postsTo(path)).toHaveLength(1);
    }
  });

  it('retries 429 and 5xx with backoff', async () => {
    push.script.set('/busy', [429, 503]);
    expect((await subscribe(phone, '/busy', newSubscriber())).status).toBe(200);
    await submitRequest();
    await waitFor(() => postsTo('/busy').length === 3, 'two retries');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(postsTo('/busy')).toHaveLength(3);
    expect(broker.logs()).toMatch(/"event":"push-sent"[^\n]*"attempt":3/);
  });

  it('gives up after four attempts and keeps the subscription', async () => {
    push.script.set('/down', [500, 500, 500, 500]);
    expect((await subscribe(phone, '/down', newSubscriber())).status).toBe(200);
    await submitRequest();
    await waitFor(() => broker.logs().includes('"event":"push-gave-up"'), 'the broker to give up');
    expect(postsTo('/down')).toHaveLength(4);
    await submitRequest();
    await waitFor(() => postsTo('/down').length === 5, 'a push to the kept subscription');
  });

  it('does not retry other client errors', async () => {
    push.script.set('/bad', [400]);
    expect((await subscribe(phone, '/bad', newSubscriber())).status).toBe(200);
    await submitRequest();
    await waitFor(() => postsTo('/bad').length === 1, 'the push');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(postsTo('/bad')).toHaveLength(1);
  });

  it('stops pushing after DELETE', async () => {
    expect((await subscribe(phone, '/deleted', newSubscriber())).status).toBe(200);
    expect((await subscribe(phone, '/deleted', newSubscriber(), 'DELETE')).status).toBe(200);
    await submitRequest();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(postsTo('/deleted')).toHaveLength(0);
  });

  it('rejects invalid subscriptions and non-devices', async () => {
    const subscriber = newSubscriber();
    expect((await subscribe(consumer, '/consumer', subscriber)).status).toBe(403);
    const response = await fetch(`${broker.url}/v1/orgs/${trust.org}/push-subscription`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${phone.token ?? ''}`, 'content-type': 'application/json' },
      body: JSON.stringify({ endpoint: `${push.url}/short-key`, keys: { p256dh: 'AAAA', auth: subscriber.auth.toString('base64url') } }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
    const unauthenticated = await fetch(`${broker.url}/v1/orgs/${trust.org}/push-subscription`, { method: 'DELETE' });
    expect(unauthenticated.status).toBe(401);
  });
});

describeBrowser('service worker push handler in Chromium', () => {
  let app: RunningApproverServer;
  let browser: Browser;

  beforeAll(async () => {
    const bundleDir = mkdtempSync(join(tmpdir(), 'sv-web-bundle-'));
    await buildWebApp({ outDir: bundleDir, minify: true });
    app = await startApproverServer({ bundleDir, listen: `localhost:${await freePort()}` });
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser.close();
    await app.close();
  });

  it('shows a fixed notification for a pushed request', async () => {
    await browser.context.grantPermissions(['notifications'], { origin: app.url });
    const cdp = await browser.context.newCDPSession(browser.page);
    const registrations: string[] = [];
    cdp.on('ServiceWorker.workerRegistrationUpdated', (event) => {
      for (const registration of event.registrations) if (!registration.isDeleted) registrations.push(registration.registrationId);
    });
    await cdp.send('ServiceWorker.enable');
    await browser.page.goto(app.url);
    await browser.page.evaluate(async () => { await navigator.serviceWorker.ready; });
    await waitFor(() => registrations.length > 0, 'the service worker registration');

    const data = JSON.stringify({ v: 1, request: 'req-0123456789', label: 'prod/db/url for root' });
    // A push delivered while the worker is still activating can be dropped, so it is delivered again until a notification shows.
    const deadline = Date.now() + 20_000;
    let shown: { title: string; body: string; tag: string }[] = [];
    while (shown.length === 0 && Date.now() < deadline) {
      await cdp.send('ServiceWorker.deliverPushMessage', { origin: app.url, registrationId: registrations[0] ?? '', data });
      await new Promise((resolve) => setTimeout(resolve, 500));
      shown = await browser.page.evaluate(async () => {
        const registration = await navigator.serviceWorker.ready;
        return (await registration.getNotifications()).map((item) => ({ title: item.title, body: item.body, tag: item.tag }));
      });
    }
    expect(shown).toEqual([{
      title: 'Stillvault approver',
      body: 'Approval requested. Open the app and unlock it to see the request.',
      tag: 'stillvault-request-req-0123456789',
    }]);
    expect(browser.logs.filter((line) => /Content Security Policy|Trusted|pageerror/i.test(line))).toEqual([]);
  });
});
