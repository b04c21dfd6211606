// End to end in real Chromium: a real broker process, the built approver
// bundle served by its own server, a WebAuthn virtual authenticator with PRF,
// and the admin and consumer sides done with the protocol core through the
// broker API. Screenshots go to test-results/screenshots/; with
// STILLVAULT_UPDATE_SCREENSHOTS=1 they replace the ones docs/approver.md shows in docs/img/.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  buildSecretVersion, createOrg, createRequest, decryptSecret, displayFingerprint, fingerprintOfBase64Url, issueConsumerCert, issueDeviceCert,
  newId, openApproval, SealingPrivateKey, SecretBytes, signPolicy, SigningPrivateKey, verifyApproval, verifyConsumerCert, verifyDeviceCert,
  verifyOrg, verifyPolicy, verifyRequest, verifySecret, approveRequest,
  type ConsumerCertBody, type DeviceCertBody, type OrgTrust, type PolicyBody, type SecretBody, type Signed,
} from '../../src/protocol/index.js';
import { BrokerClient, type RequestStatus } from '../../src/broker/client.js';
import { encodeInviteToken, inviteCodeHash, newInviteCode } from '../../src/cli/invite.js';
import { buildWebApp } from '../../src/web/build.js';
import { startApproverServer, type RunningApproverServer } from '../../src/web/server.js';
import { addVirtualAuthenticator, describeBrowser, launchBrowser, type Browser } from './browser.js';
import { freePort, spawnBroker, startRelay, type BrokerProcess, type Relay } from './helpers.js';

const IMAGES = process.env.STILLVAULT_UPDATE_SCREENSHOTS === '1'
  ? join(import.meta.dirname, '../../docs/img')
  : join(import.meta.dirname, '../../test-results/screenshots');
mkdirSync(IMAGES, { recursive: true });
const SECRET_PATH = 'prod/db/url';
const SECRET_TEXT = 'postgres://app:not-a-real-password@db/prod';

function now(): number {
  return Math.floor(Date.now() / 1000);
}

interface Admin {
  identity: SigningPrivateKey;
  trust: OrgTrust;
  client: BrokerClient;
  identityKeyText: string;
}

async function makeAdmin(brokerUrl: string): Promise<Admin> {
  const identity = await SigningPrivateKey.generate('org-identity');
  const org = await createOrg(identity, { name: 'Acme', created: now() });
  const { trust } = await verifyOrg(org, identity.publicKey.fingerprint());
  const client = new BrokerClient(brokerUrl, trust.org);
  await client.registerOrg(org);
  await client.authenticate('admin', trust.org, identity);
  return { identity, trust, client, identityKeyText: identity.publicKey.toBase64Url() };
}

async function inviteLink(admin: Admin, appUrl: string, brokerUrl: string, name: string): Promise<{ link: string; invite: string }> {
  const code = newInviteCode();
  const invite = newId();
  const expires = now() + 3600;
  await admin.client.createInvite({ id: invite, codeHash: inviteCodeHash(code), kind: 'device', name, expires });
  const token = encodeInviteToken({
    v: 1, broker: brokerUrl, org: admin.trust.org, orgName: 'Acme', identityKey: admin.identityKeyText, invite, code, kind: 'device', name, expires,
  });
  return { link: `${appUrl}/#enroll=${token}`, invite };
}

describeBrowser('web approver in Chromium', () => {
  let broker: BrokerProcess;
  let relay: Relay;
  let app: RunningApproverServer;
  let browser: Browser;
  let admin: Admin;
  let webCert: Signed<DeviceCertBody>;
  let consumerHost: SigningPrivateKey;
  let consumerCert: Signed<ConsumerCertBody>;
  let consumer: BrokerClient;
  let policy: Signed<PolicyBody>;
  let secret: Signed<SecretBody>;
  let other: { signing: SigningPrivateKey; sealing: SealingPrivateKey; cert: Signed<DeviceCertBody>; client: BrokerClient };

  beforeAll(async () => {
    mkdirSync(IMAGES, { recursive: true });
    const bundleDir = mkdtempSync(join(tmpdir(), 'sv-web-bundle-'));
    await buildWebApp({ outDir: bundleDir, minify: true });
    const appPort = await freePort();
    broker = await spawnBroker(`http://localhost:${appPort}`);
    relay = await startRelay(broker.url);
    app = await startApproverServer({ bundleDir, listen: `localhost:${appPort}`, broker: relay.url });
    admin = await makeAdmin(broker.url);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser.close();
    await app.close();
    await relay.close();
    await broker.stop();
  });

  async function heading(): Promise<string> {
    return (await browser.page.locator('h1').first().textContent()) ?? '';
  }

  async function waitForHeading(text: string, timeout = 20_000): Promise<void> {
    await browser.page.locator('h1', { hasText: text }).first().waitFor({ timeout });
  }

  async function submitRequest(reason: string): Promise<{ id: string; ephemeral: SealingPrivateKey; signed: Awaited<ReturnType<typeof createRequest>> }> {
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const signed = await createRequest(consumerHost, {
      org: admin.trust.org, id: newId(), consumer: consumerCert.body.consumer, host: 'build-01', paths: [SECRET_PATH],
      requester: { uid: 1001, gid: 1001, user: 'ci', pid: 4242, exe: '/usr/bin/node', cmdline: ['node', 'deploy.js', '--env', 'prod'] },
      reason, leaseSeconds: 600, ephemeralKey: ephemeral.publicKey.toBase64Url(), created: now(), expires: now() + 300, auditHead: null,
    });
    await consumer.submitRequest(signed);
    return { id: signed.body.id, ephemeral, signed };
  }

  async function waitForState(id: string, state: string): Promise<RequestStatus> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const status = await consumer.getRequest(id);
      if (status.state === state || Date.now() > deadline) return status;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  it('serves the bundle with a strict CSP', async () => {
    const response = await fetch(app.url + '/');
    const csp = response.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain(`connect-src 'self' ${relay.url} ${relay.url.replace('http', 'ws')}`);
    expect(csp).not.toContain('unsafe-inline');
    expect((await fetch(app.url + '/files.json')).status).toBe(404);
    expect((await fetch(app.url + '/../package.json')).status).toBe(404);
    expect((await fetch(app.url + '/index.html', { method: 'POST' })).status).toBe(405);
  });

  it('enrolls with a PRF passkey', async () => {
    await addVirtualAuthenticator(browser.page, { prf: true });
    const { link } = await inviteLink(admin, app.url, relay.url, 'ana-phone');
    await browser.page.goto(link);
    await waitForHeading('Enroll this device');
    expect(await browser.page.getByText(displayFingerprint(admin.trust.org)).count()).toBe(1);
    await browser.page.screenshot({ path: join(IMAGES, 'approver-enroll.png'), fullPage: true });

    await browser.page.getByRole('button', { name: 'Create passkey and enroll' }).click();
    await waitForHeading('Waiting for your admin');
    const shown = await browser.page.getByTestId('signing-fingerprint').textContent();
    expect(await browser.page.getByText('Backup eligible').count()).toBe(1);
    await browser.page.screenshot({ path: join(IMAGES, 'approver-enroll-pending.png'), fullPage: true });

    const [enrollment] = await admin.client.listEnrollments('pending');
    if (enrollment === undefined) throw new Error('no pending enrollment at the broker');
    expect(enrollment.platform).toBe('web');
    expect(displayFingerprint(fingerprintOfBase64Url(enrollment.keys.signingKey ?? ''))).toBe(shown);
    webCert = await issueDeviceCert(admin.identity, {
      device: newId(), name: 'ana-phone', platform: 'web', signingKey: enrollment.keys.signingKey ?? '', sealingKey: enrollment.keys.sealingKey ?? '',
      issued: now() - 10, expires: now() + 86_400,
    });
    await admin.client.uploadCertificate(enrollment.id, webCert);
    await waitForHeading('Approver locked');
    expect(await browser.page.locator('main').getByText('Enrollment complete').count()).toBe(1);

    const stored = await browser.page.evaluate((): [string, string][] => Object.keys(localStorage).map((key) => [key, localStorage.getItem(key) ?? '']));
    expect(stored.map(([key]) => key)).toEqual(['stillvault.approver.v1']);
    const state = JSON.parse(stored[0]?.[1] ?? '{}') as Record<string, unknown>;
    expect(Object.keys(state).sort()).toEqual([
      'authenticator', 'broker', 'certificate', 'credentialId', 'decided', 'enrollment', 'identityKey', 'name', 'org', 'orgName',
      'policyVersions', 'sealingKey', 'secretVersions', 'signingKey', 'v',
    ]);
    expect(state.enrollment).toBe(null);
  });

  it('approves and the consumer opens the secret', async () => {
    consumerHost = await SigningPrivateKey.generate('consumer-host');
    consumerCert = await issueConsumerCert(admin.identity, { consumer: newId(), name: 'build-01', hostKey: consumerHost.publicKey.toBase64Url(), issued: now() - 10, expires: now() + 86_400 });
    await admin.client.putCertificate(consumerCert);
    const otherSigning = await SigningPrivateKey.generate('device-signing');
    const otherSealing = await SealingPrivateKey.generate('device-sealing');
    const otherCert = await issueDeviceCert(admin.identity, {
      device: newId(), name: 'ben-laptop', platform: 'terminal', signingKey: otherSigning.publicKey.toBase64Url(), sealingKey: otherSealing.publicKey.toBase64Url(),
      issued: now() - 10, expires: now() + 86_400,
    });
    await admin.client.putCertificate(otherCert);
    policy = await signPolicy(admin.identity, {
      name: 'prod', version: 1, paths: ['prod/**'], approvers: [webCert.body.device, otherCert.body.device], quorum: 1, maxLeaseSeconds: 3600,
      consumers: [consumerCert.body.consumer], requesters: [{}], issued: now(),
    });
    await admin.client.putPolicy(policy);
    const verifiedPolicy = await verifyPolicy(policy, admin.trust, { minVersion: 0 });
    const devices = [await verifyDeviceCert(webCert, admin.trust, now()), await verifyDeviceCert(otherCert, admin.trust, now())];
    secret = await buildSecretVersion(admin.identity, { policy: verifiedPolicy, devices, path: SECRET_PATH, version: 1, created: now(), plaintext: SecretBytes.fromString(SECRET_TEXT) });
    await admin.client.putSecret(secret);
    consumer = new BrokerClient(broker.url, admin.trust.org);
    await consumer.authenticate('consumer', consumerCert.body.consumer, consumerHost);
    const otherClient = new BrokerClient(broker.url, admin.trust.org);
    await otherClient.authenticate('device', otherCert.body.device, otherSigning);
    other = { signing: otherSigning, sealing: otherSealing, cert: otherCert, client: otherClient };

    await browser.page.getByRole('button', { name: 'Unlock with biometric' }).click();
    await waitForHeading('Requests');
    const made = await submitRequest('Run database migration 42 for the release.');
    const item = browser.page.locator(`[data-request="${made.id}"]`);
    await item.waitFor({ timeout: 20_000 });
    expect((await waitForState(made.id, 'pending')).delivered).toBeGreaterThan(0);
    await item.click();
    await waitForHeading('Approve this request?');
    expect(await browser.page.getByTestId('path').textContent()).toBe(SECRET_PATH);
    expect(await browser.page.getByTestId('reason').textContent()).toBe('Run database migration 42 for the release.');
    expect(await browser.page.getByTestId('host').textContent()).toBe('build-01');
    await browser.page.screenshot({ path: join(IMAGES, 'approver-request.png'), fullPage: true });

    await browser.page.getByRole('button', { name: 'Approve with biometric' }).click();
    await waitForHeading('Approved');
    await browser.page.screenshot({ path: join(IMAGES, 'approver-approved.png'), fullPage: true });

    const status = await waitForState(made.id, 'released');
    expect(status.state).toBe('released');
    if (status.approval === null || status.secrets === null) throw new Error('released request without approval or secrets');
    const trust = admin.trust;
    const request = await verifyRequest(made.signed, trust, await verifyConsumerCert(consumerCert, trust, now()), now());
    const approval = await verifyApproval(status.approval, { trust, request, deviceCert: await verifyDeviceCert(webCert, trust, now()), policy: verifiedPolicy, now: now() });
    const released = await verifySecret(status.secrets[0], trust, verifiedPolicy, { minVersion: 0 });
    const keys = await openApproval(approval, request, made.ephemeral, new Map([[SECRET_PATH, released]]));
    const dek = keys.get(SECRET_PATH);
    if (dek === undefined) throw new Error('no DEK released');
    const plaintext = await decryptSecret(released, dek);
    expect(plaintext.exposeString()).toBe(SECRET_TEXT);
    plaintext.wipe();
    dek.wipe();
  });

  it('denies with one tap', async () => {
    await browser.page.getByRole('button', { name: 'Back to requests' }).click();
    await waitForHeading('Requests');
    const made = await submitRequest('Rotate the token.');
    await browser.page.locator(`[data-request="${made.id}"]`).click();
    await waitForHeading('Approve this request?');
    await browser.page.getByRole('button', { name: 'Deny' }).click();
    await waitForHeading('Denied');
    expect((await waitForState(made.id, 'denied')).state).toBe('denied');
    await browser.page.getByRole('button', { name: 'Back to requests' }).click();
    await waitForHeading('Requests');
  });

  it('shows who settled a request elsewhere', async () => {
    const made = await submitRequest('Nightly backup.');
    await browser.page.locator(`[data-request="${made.id}"]`).waitFor();
    const bundle = (await other.client.listPendingRequests()).find((candidate) => candidate.request.body.id === made.id);
    if (bundle === undefined) throw new Error('second approver did not get the request');
    const trust = admin.trust;
    const request = await verifyRequest(bundle.request, trust, await verifyConsumerCert(bundle.consumerCert, trust, now()), now());
    const verifiedPolicy = await verifyPolicy(bundle.policy, trust, { minVersion: 0 });
    const secrets = [await verifySecret(bundle.secrets[0], trust, verifiedPolicy, { minVersion: 0 })];
    const approval = await approveRequest({
      deviceKey: other.signing, sealingKey: other.sealing, deviceCert: await verifyDeviceCert(other.cert, trust, now()), request, secrets,
      leaseSeconds: 60, created: now(), auditHead: null,
    });
    await other.client.submitApproval(made.id, approval);
    await browser.page.getByText('was released by ben-laptop').waitFor({ timeout: 20_000 });
    expect(await browser.page.locator(`[data-request="${made.id}"]`).count()).toBe(0);
  });

  it('rejects a request changed in transit', async () => {
    relay.tamper = (message) => {
      const bundle = (message.type === 'request' ? message.bundle : undefined) as { request: { body: { paths: string[] } } } | undefined;
      if (bundle !== undefined) bundle.request.body.paths = ['prod/payments/api-key'];
      return message;
    };
    try {
      const made = await submitRequest('Harmless looking request.');
      const item = browser.page.locator(`[data-request="${made.id}"]`);
      await item.waitFor({ timeout: 20_000 });
      expect(await item.textContent()).toContain('failed verification (bad_signature)');
      await item.click();
      await waitForHeading('Request rejected');
      expect(await browser.page.getByRole('button', { name: 'Approve with biometric' }).count()).toBe(0);
      expect(await browser.page.getByText('prod/payments/api-key').count()).toBe(0);
      expect((await consumer.getRequest(made.id)).state).toBe('pending');
    } finally {
      relay.tamper = null;
    }
    expect(await heading()).toBe('Request rejected');
  });

  it('stops enrollment without PRF', async () => {
    const plain = await launchBrowser();
    try {
      await addVirtualAuthenticator(plain.page, { prf: false });
      const { link, invite } = await inviteLink(admin, app.url, relay.url, 'no-prf-phone');
      await plain.page.goto(link);
      await plain.page.getByRole('button', { name: 'Create passkey and enroll' }).click();
      const alert = plain.page.getByRole('alert');
      await alert.waitFor({ timeout: 20_000 });
      const text = (await alert.textContent()) ?? '';
      expect(text).toContain('does not support the WebAuthn PRF extension');
      expect(text).toContain('prf_unsupported');
      expect(await plain.page.evaluate(() => localStorage.length)).toBe(0);
      const pending = await admin.client.listEnrollments('pending');
      expect(pending.filter((enrollment) => enrollment.inviteId === invite)).toEqual([]);
    } finally {
      await plain.close();
    }
  });

  it('logs no CSP violation or page error', () => {
    expect(browser.logs.filter((line) => /Content Security Policy|Trusted|pageerror/i.test(line))).toEqual([]);
  });
});
