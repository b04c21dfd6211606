import { BrokerClient } from '../broker/client.js';
import {
  approveRequest, SealingPrivateKey, SigningPrivateKey, SigningPublicKey, fromBase64Url, verifyConsumerCert, verifyDeviceCert,
  verifyPolicy, verifyRequest, verifySecret, type DeviceCertBody, type PolicyBody, type Signed,
} from '../protocol/index.js';

/**
 * A benchmark approver in its own process: it reads throwaway keys from
 * stdin, then verifies and approves every request it is sent at once, with
 * the same protocol calls the terminal approver makes after a human says yes.
 */

export interface ApproverSetup {
  url: string;
  identityKey: string;
  device: string;
  signingSeed: string;
  sealingSeed: string;
  deviceCert: Signed<DeviceCertBody>;
  policy: Signed<PolicyBody>;
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) text += chunk.toString('utf8');
  return text;
}

async function main(): Promise<void> {
  const setup = JSON.parse(await readStdin()) as ApproverSetup;
  const identityKey = SigningPublicKey.fromBase64Url(setup.identityKey);
  const trust = { org: identityKey.fingerprint(), identityKey };
  const signing = await SigningPrivateKey.fromSeed('device-signing', fromBase64Url(setup.signingSeed));
  const sealing = await SealingPrivateKey.fromSeed('device-sealing', fromBase64Url(setup.sealingSeed));
  const deviceCert = await verifyDeviceCert(setup.deviceCert, trust, now());
  const policy = await verifyPolicy(setup.policy, trust, { minVersion: 0 });

  const client = new BrokerClient(setup.url, trust.org);
  await client.authenticate('device', setup.device, signing);
  const stream = await client.connect();
  process.once('SIGTERM', () => { void stream.close(); });
  process.stderr.write('approver ready\n');

  for await (const event of stream) {
    if (event.type !== 'request') continue;
    stream.ack(event.request);
    const consumer = await verifyConsumerCert(event.bundle.consumerCert, trust, now());
    const request = await verifyRequest(event.bundle.request, trust, consumer, now());
    const secrets = await Promise.all(event.bundle.secrets.map((secret) => verifySecret(secret, trust, policy, { minVersion: 0 })));
    const approval = await approveRequest({
      deviceKey: signing, sealingKey: sealing, deviceCert, request, secrets, leaseSeconds: request.body.leaseSeconds, created: now(), auditHead: null,
    });
    await client.submitApproval(event.request, approval);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench approver: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
