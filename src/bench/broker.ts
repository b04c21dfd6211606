import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrokerClient } from '../broker/client.js';
import {
  buildSecretVersion, createOrg, createRequest, issueConsumerCert, issueDeviceCert, newId, requestHash, SealingPrivateKey, SecretBytes,
  signApproval, signPolicy, SigningPrivateKey, toBase64Url, verifyDeviceCert, verifyOrg, verifyPolicy,
  type ConsumerCertBody, type DeviceCertBody, type Signed,
} from '../protocol/index.js';

/**
 * Releases per second through one broker process (SQLite), driven from this
 * process by simulated consumers and approvers over HTTP. Requests and
 * approvals carry real signatures, which the broker verifies. The approvals'
 * HPKE payloads are random bytes of the right length, because the broker
 * never opens them and client-side HPKE would measure the client instead.
 */

const CONSUMERS = 8;
const APPROVERS = 2;
const CONCURRENCY = 16;
const DURATION_MS = 8000;
const MAX_RELEASES = 20_000;

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function measureEd25519VerifyRate(): number {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const message = randomBytes(1024);
  const signature = sign(null, message, privateKey);
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < 1000) {
    if (!verify(null, message, publicKey, signature)) throw new Error('Ed25519 self-check failed');
    count++;
  }
  return count / ((performance.now() - started) / 1000);
}

async function startBrokerProcess(dataDir: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'broker', 'main.js');
  const child = spawn(process.execPath, [main, '--listen', '127.0.0.1:0', '--data', dataDir, '--rate-per-minute', '1000000', '--max-pending', '1000'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      const match = /"event":"start".*?"url":"([^"]+)"/.exec(stderr);
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once('exit', (code) => { reject(new Error(`broker exited with ${String(code)}: ${stderr.slice(-2000)}`)); });
  });
  return {
    url,
    stop: () => new Promise<void>((resolve) => {
      child.once('exit', () => { resolve(); });
      child.kill('SIGTERM');
    }),
  };
}

export async function runBrokerBench(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sv-bench-broker-'));
  const broker = await startBrokerProcess(dataDir);
  try {
    const identity = await SigningPrivateKey.generate('org-identity');
    const orgObject = await createOrg(identity, { name: 'Bench', created: now() });
    const { trust } = await verifyOrg(orgObject, identity.publicKey.fingerprint());
    const org = trust.org;
    const admin = new BrokerClient(broker.url, org);
    await admin.registerOrg(orgObject);
    await admin.authenticate('admin', org, identity);

    const approvers: { signing: SigningPrivateKey; cert: Signed<DeviceCertBody>; client: BrokerClient }[] = [];
    for (let i = 0; i < APPROVERS; i++) {
      const signing = await SigningPrivateKey.generate('device-signing');
      const sealing = await SealingPrivateKey.generate('device-sealing');
      const cert = await issueDeviceCert(identity, {
        device: newId(), name: `approver ${i}`, platform: 'terminal', signingKey: signing.publicKey.toBase64Url(),
        sealingKey: sealing.publicKey.toBase64Url(), issued: now() - 10, expires: now() + 3600,
      });
      await admin.putCertificate(cert);
      const client = new BrokerClient(broker.url, org);
      await client.authenticate('device', cert.body.device, signing);
      approvers.push({ signing, cert, client });
    }
    const consumers: { host: SigningPrivateKey; cert: Signed<ConsumerCertBody>; client: BrokerClient }[] = [];
    for (let i = 0; i < CONSUMERS; i++) {
      const host = await SigningPrivateKey.generate('consumer-host');
      const cert = await issueConsumerCert(identity, { consumer: newId(), name: `host ${i}`, hostKey: host.publicKey.toBase64Url(), issued: now() - 10, expires: now() + 3600 });
      await admin.putCertificate(cert);
      const client = new BrokerClient(broker.url, org);
      await client.authenticate('consumer', cert.body.consumer, host);
      consumers.push({ host, cert, client });
    }
    const policy = await signPolicy(identity, {
      name: 'bench', version: 1, paths: ['bench/**'], approvers: approvers.map((approver) => approver.cert.body.device), quorum: 1,
      maxLeaseSeconds: 3600, consumers: consumers.map((consumer) => consumer.cert.body.consumer), requesters: [{}], issued: now(),
    });
    await admin.putPolicy(policy);
    const verifiedPolicy = await verifyPolicy(policy, trust, { minVersion: 0 });
    const devices = await Promise.all(approvers.map((approver) => verifyDeviceCert(approver.cert, trust, now())));
    await admin.putSecret(await buildSecretVersion(identity, {
      policy: verifiedPolicy, devices, path: 'bench/token', version: 1, created: now(), plaintext: SecretBytes.fromString('bench value'),
    }));
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');

    let released = 0;
    let next = 0;
    const deadline = performance.now() + DURATION_MS;
    const started = performance.now();
    async function worker(): Promise<void> {
      while (performance.now() < deadline && next < MAX_RELEASES) {
        const index = next++;
        const consumer = consumers[index % CONSUMERS];
        const approver = approvers[index % APPROVERS];
        if (consumer === undefined || approver === undefined) throw new Error('bench fixture missing');
        const request = await createRequest(consumer.host, {
          org, id: newId(), consumer: consumer.cert.body.consumer, host: 'bench', paths: ['bench/token'],
          requester: { uid: 1000, gid: 1000, user: 'bench', pid: 1, exe: '/usr/bin/node', cmdline: ['node'] },
          reason: 'benchmark', leaseSeconds: 60, ephemeralKey: ephemeral.publicKey.toBase64Url(), created: now(), expires: now() + 300, auditHead: null,
        });
        await consumer.client.submitRequest(request);
        const approval = await signApproval(approver.signing, {
          org, request: request.body.id, requestHash: requestHash(request), device: approver.cert.body.device, decision: 'approve', leaseSeconds: 60,
          releases: [{ path: 'bench/token', secretVersion: 1, scheme: 'whole', enc: toBase64Url(randomBytes(32)), ct: toBase64Url(randomBytes(48)) }],
          created: now(), auditHead: null,
        });
        await approver.client.submitApproval(request.body.id, approval);
        const status = await consumer.client.getRequest(request.body.id);
        if (status.state !== 'released') throw new Error(`request ${request.body.id} ended ${status.state}`);
        released++;
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, () => worker()));
    const seconds = (performance.now() - started) / 1000;
    const releaseRate = released / seconds;
    const verifyRate = measureEd25519VerifyRate();
    process.stdout.write([
      'broker releases (SQLite, one broker process, clients in this process)',
      `  releases:                    ${released} in ${seconds.toFixed(1)} s`,
      `  releases per second:         ${releaseRate.toFixed(0)}`,
      `  node:crypto Ed25519 verify/s: ${verifyRate.toFixed(0)} (1 KiB, this process)`,
      `  verify rate / release rate:  ${(verifyRate / releaseRate).toFixed(1)}`,
      '',
    ].join('\n'));
  } finally {
    await broker.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
