// Generates test/vectors/stillvault-v1.json from fixed seeds. Ed25519 is
// deterministic, so the same seeds give byte-identical output. Run:
//   npx esbuild test/vectors/generate.ts --bundle --platform=node --format=esm --packages=external --outfile=node_modules/.cache/sv-generate.mjs && node node_modules/.cache/sv-generate.mjs
import {
  contextForKind, OBJECT_KINDS, sha256, signedMessage, SigningPrivateKey, toBase64Url, utf8Encode, type ObjectKind,
} from '../../src/protocol/index.js';

export interface VectorEntry {
  kind: ObjectKind;
  org: string;
  object: { body: Record<string, unknown>; signer: string; sig: string };
  canonical: string;
  signature: string;
  publicKey: string;
  valid: boolean;
  reason: string;
}

const T = 1_750_000_000;

async function keyFrom(label: string, role: Parameters<typeof SigningPrivateKey.fromSeed>[0]): Promise<SigningPrivateKey> {
  return SigningPrivateKey.fromSeed(role, sha256(utf8Encode(`stillvault test vector seed: ${label}`)));
}

function bytes(label: string, length: number): string {
  return toBase64Url(sha256(utf8Encode(`stillvault test vector bytes: ${label}`)).subarray(0, length));
}

async function sign(context: string, body: Record<string, unknown>, key: SigningPrivateKey): Promise<{ body: Record<string, unknown>; signer: string; sig: string }> {
  const sig = toBase64Url(await key.sign(signedMessage(context, body)));
  return { body, signer: key.publicKey.fingerprint(), sig };
}

function entry(kind: ObjectKind, org: string, object: VectorEntry['object'], verifier: SigningPrivateKey, valid: boolean, reason: string): VectorEntry {
  return {
    kind, org, object,
    canonical: toBase64Url(signedMessage(contextForKind(kind), object.body)),
    signature: object.sig,
    publicKey: verifier.publicKey.toBase64Url(),
    valid, reason,
  };
}

export async function generateVectors(): Promise<{ description: string; entries: VectorEntry[] }> {
  const identity = await keyFrom('org identity', 'org-identity');
  const impostor = await keyFrom('impostor', 'org-identity');
  const device = await keyFrom('device signing', 'device-signing');
  const host = await keyFrom('consumer host', 'consumer-host');
  const broker = await keyFrom('broker', 'broker');
  const org = identity.publicKey.fingerprint();
  const deviceId = bytes('device id', 16);
  const consumerId = bytes('consumer id', 16);
  const requestId = bytes('request id', 16);

  const bodies: [ObjectKind, Record<string, unknown>, SigningPrivateKey][] = [
    ['org', { name: 'Acme', identityKey: identity.publicKey.toBase64Url(), created: T }, identity],
    ['device-cert', { device: deviceId, name: 'ana phone', platform: 'web', signingKey: device.publicKey.toBase64Url(), sealingKey: bytes('sealing key', 32), issued: T, expires: T + 86_400 }, identity],
    ['consumer-cert', { consumer: consumerId, name: 'build-01', hostKey: host.publicKey.toBase64Url(), issued: T, expires: T + 86_400 }, identity],
    ['policy', { name: 'prod-db', version: 1, paths: ['prod/db/*'], approvers: [deviceId], quorum: 1, maxLeaseSeconds: 3600, consumers: [consumerId], requesters: [{ users: ['ci'] }], issued: T }, identity],
    ['secret', {
      path: 'prod/db/url', version: 1, policy: { name: 'prod-db', version: 1, hash: bytes('policy hash', 32) }, aead: 'A256GCM', nonce: bytes('nonce', 12),
      grants: [{ device: deviceId, scheme: 'whole', enc: bytes('grant enc', 32), ct: bytes('grant ct', 48) }], created: T, deleted: false, ciphertext: bytes('ciphertext', 32),
    }, identity],
    ['request', {
      id: requestId, consumer: consumerId, host: 'build-01', paths: ['prod/db/url'],
      requester: { uid: 1001, gid: 1001, user: 'ci', pid: 4242, exe: '/usr/bin/node', cmdline: ['node', 'deploy.js'] },
      reason: 'deploy migration 42 – «quoted»', leaseSeconds: 600, ephemeralKey: bytes('ephemeral key', 32), created: T, expires: T + 300, auditHead: { seq: 17, hash: bytes('audit head', 32) },
    }, host],
    ['approval', {
      request: requestId, requestHash: bytes('request hash', 32), device: deviceId, decision: 'approve', leaseSeconds: 300,
      releases: [{ path: 'prod/db/url', secretVersion: 1, scheme: 'whole', enc: bytes('release enc', 32), ct: bytes('release ct', 48) }], created: T + 10, auditHead: null,
    }, device],
    ['revocation', { subject: 'device', id: deviceId, reason: 'lost phone', revoked: T }, identity],
    ['audit-head', { seq: 18, hash: bytes('audit entry', 32), time: T }, broker],
  ];

  const entries: VectorEntry[] = [];
  for (const [kind, fields, key] of bodies) {
    const context = contextForKind(kind);
    const body = { v: 1, kind, org, ...fields };
    const valid = await sign(context, body, key);
    entries.push(entry(kind, org, valid, key, true, 'ok'));

    const tamperedMember = Object.keys(fields)[0] ?? 'name';
    const tampered = { ...valid, body: { ...body, [tamperedMember]: typeof fields[tamperedMember] === 'string' ? `${fields[tamperedMember]}x` : 2 } };
    entries.push(entry(kind, org, tampered, key, false, 'bad_signature'));

    const otherKind = (Object.keys(OBJECT_KINDS) as ObjectKind[]).find((candidate) => candidate !== kind) ?? 'org';
    entries.push(entry(kind, org, await sign(contextForKind(otherKind), body, key), key, false, 'bad_signature'));

    const forged = await sign(context, body, impostor);
    entries.push(entry(kind, org, { ...forged, signer: key.publicKey.fingerprint() }, key, false, 'bad_signature'));
    entries.push(entry(kind, org, forged, key, false, 'untrusted_signer'));

    entries.push(entry(kind, org, await sign(context, { ...body, v: 2 }, key), key, false, 'unknown_version'));
    entries.push(entry(kind, org, await sign(context, { ...body, kind: 'widget' }, key), key, false, 'unknown_kind'));
  }
  return {
    description: 'Stillvault protocol v1 signed-object vectors. canonical = base64url(UTF-8(context(kind)) || 0x00 || JCS(object.body)); verify with publicKey for org; reason is the expected ProtocolError code, or ok.',
    entries,
  };
}

if (process.argv[1]?.endsWith('sv-generate.mjs') || process.argv[1]?.endsWith('generate.ts')) {
  const { writeFileSync } = await import('node:fs');
  const path = await import('node:path');
  // Run from the repository root.
  const target = path.join(process.cwd(), 'test/vectors/stillvault-v1.json');
  writeFileSync(target, `${JSON.stringify(await generateVectors(), null, 2)}\n`);
  console.log(`wrote ${target}`);
}
