import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  aeadDecrypt, aeadEncrypt, DataKey, SealingPrivateKey, SecretBytes, SigningPrivateKey, openRelease, sealRelease, utf8Encode,
  type ReleaseBinding,
} from '../protocol/index.js';
import { CLI, DIST, makeBenchOrg, measureLoop, startProcess, stopProcesses } from './world.js';

/**
 * The whole release path: broker, daemon and an approver that answers at
 * once, each in its own process on loopback, with real keys and real crypto.
 * This process asks the daemon for a secret, waits for the plaintext, then
 * ends the lease so the next iteration makes a new request. Next to it, the
 * same run measures the raw cost of the crypto operations one release needs.
 */

const SECRET_PATH = 'bench/release/token';
const DURATION_MS = 15_000;

/**
 * Crypto operations on the release path, counted from the code: the daemon
 * makes an ephemeral key and signs the request; the broker verifies the
 * request, the consumer certificate, the approval and the device certificate;
 * the approver verifies the consumer certificate, the request, the policy and
 * the secret, opens its grant, re-seals it and signs the approval; the daemon
 * verifies the device certificate, the policy, the secret and the approval,
 * opens the release and decrypts the secret.
 */
const OPERATIONS = { keygen: 1, sign: 2, verify: 12, hpkeSeal: 1, hpkeOpen: 2, aeadDecrypt: 1 } as const;

export async function runReleaseBench(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'sv-bench-release-'));
  const children: ChildProcess[] = [];
  try {
    const brokerUrl = await startProcess(children, [join(DIST, 'broker', 'main.js'), '--listen', '127.0.0.1:0', '--data', join(scratch, 'broker'), '--rate-per-minute', '100000'], /"event":"start".*?"url":"([^"]+)"/);
    const home = await makeBenchOrg(brokerUrl, scratch, SECRET_PATH, children);
    const socketPath = join(scratch, 'run', 'daemon.sock');
    await startProcess(children, [CLI, 'daemon', '--socket', socketPath], /"event":"start"/, { ...process.env, STILLVAULT_HOME: home });

    const release = await measureLoop(DURATION_MS, () => releaseOnce(socketPath), 5);
    const primitives = await measurePrimitives();
    const sum = Object.entries(OPERATIONS).reduce((total, [name, count]) => total + count * primitives[name as keyof typeof OPERATIONS], 0);

    process.stdout.write('\nrelease path: request to plaintext in hand (broker, daemon, approver in separate processes)\n');
    process.stdout.write(`releases: ${release.count} in ${DURATION_MS / 1000} s, p50 ${release.p50.toFixed(1)} ms, p99 ${release.p99.toFixed(1)} ms\n`);
    process.stdout.write('raw crypto cost of one release, measured in this process:\n');
    for (const [name, count] of Object.entries(OPERATIONS)) {
      const each = primitives[name as keyof typeof OPERATIONS];
      process.stdout.write(`  ${name.padEnd(12)} ${String(count).padStart(3)} x ${each.toFixed(3)} ms = ${(count * each).toFixed(3)} ms\n`);
    }
    process.stdout.write(`  sum                    ${sum.toFixed(3)} ms\n`);
    process.stdout.write(`release p50 / crypto sum: ${(release.p50 / sum).toFixed(1)}x\n`);
  } finally {
    await stopProcesses(children);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Requests the secret, waits for the result line, then ends the lease so the next call makes a new request. */
async function releaseOnce(socketPath: string): Promise<void> {
  const text = await call(socketPath, 'POST', '/v1/secrets', JSON.stringify({ paths: [SECRET_PATH], reason: 'benchmark', leaseSeconds: 60 }));
  const result = text.split('\n').find((line) => line.includes('"type":"result"'));
  if (result === undefined) throw new Error(`daemon did not return a result: ${text.slice(0, 300)}`);
  const lease = (JSON.parse(result) as { lease: { id: string } }).lease.id;
  await call(socketPath, 'DELETE', `/v1/leases/${lease}`);
}

function call(socketPath: string, method: string, path: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { host: 'stillvault' };
    if (body !== undefined) headers['content-length'] = Buffer.byteLength(body);
    const request = http.request({ socketPath, method, path, headers, agent: false }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
      response.on('end', () => { resolve(text); });
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Returns the mean cost in ms of each operation in OPERATIONS, through the protocol core's own wrappers. */
async function measurePrimitives(): Promise<Record<keyof typeof OPERATIONS, number>> {
  const signer = await SigningPrivateKey.generate('consumer-host');
  const message = new Uint8Array(1024);
  const signature = await signer.sign(message);
  const recipient = await SealingPrivateKey.generate('request-ephemeral');
  const binding: ReleaseBinding = { org: 'o', request: 'r', requestHash: 'h', device: 'd', path: SECRET_PATH, secretVersion: 1 };
  const dek = DataKey.generate();
  const sealed = await sealRelease(binding, dek, recipient.publicKey);
  const aad = utf8Encode('bench');
  const aeadKey = DataKey.generate();
  const aeadKeyBytes = aeadKey.exportBytes();
  const encrypted = await aeadEncrypt(aeadKey, SecretBytes.fromString('postgres://bench'), aad);

  return {
    keygen: await meanMs(async () => { (await SealingPrivateKey.generate('request-ephemeral')).wipe(); }),
    sign: await meanMs(async () => { await signer.sign(message); }),
    verify: await meanMs(async () => { await signer.publicKey.verify(message, signature); }),
    hpkeSeal: await meanMs(async () => { await sealRelease(binding, dek, recipient.publicKey); }),
    hpkeOpen: await meanMs(async () => { (await openRelease(sealed, binding, recipient)).wipe(); }),
    aeadDecrypt: await meanMs(async () => { (await aeadDecrypt(DataKey.fromBytes(aeadKeyBytes), encrypted.nonce, encrypted.ciphertext, aad)).wipe(); }),
  };
}

async function meanMs(operation: () => Promise<void>): Promise<number> {
  const stats = await measureLoop(1000, operation, 20);
  return 1000 / stats.rate;
}
