// The SQLite layer under concurrent writers, and a scan of everything the
// broker stores and logs for secret material.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { newId, openGrant, sha256, toBase64Url, toHex, utf8Encode } from '../../src/protocol/index.js';
import { BrokerClient } from '../../src/broker/client.js';
import { openSqlite } from '../../src/broker/db.js';
import { decide, makeDeviceKeys, makeRequest, makeWorld, openRelease, SECRET_PATH, spawnBroker } from './fixtures.js';

const run = promisify(execFile);

// Each writer runs read-then-write transactions with a pause between the
// read and the write, so the two processes' transactions interleave.
const WRITER = `
import { openSqlite } from ${JSON.stringify(resolve('dist/broker/db.js'))};
const db = openSqlite(process.argv[1]);
for (let i = 0; i < 40; i++) {
  await db.write(async (tx) => {
    const row = await tx.get('SELECT value FROM counter WHERE id = 1');
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
    await tx.run('UPDATE counter SET value = ? WHERE id = 1', [row.value + 1]);
    await tx.run('INSERT INTO log (writer) VALUES (?)', [process.argv[2]]);
  });
}
await db.close();
`;

describe('sqlite storage', () => {
  it('concurrent writers never see SQLITE_BUSY', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sv-sqlite-')), 'test.sqlite');
    const db = openSqlite(file);
    await db.write(async (tx) => {
      await tx.run('CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)');
      await tx.run('CREATE TABLE log (writer TEXT NOT NULL)');
      await tx.run('INSERT INTO counter (id, value) VALUES (1, 0)');
    });
    await db.close();

    const writers = ['a', 'b'].map((name) => run(process.execPath, ['--input-type=module', '-e', WRITER, file, name]));
    const results = await Promise.all(writers);
    for (const result of results) expect(result.stderr).not.toContain('SQLITE_BUSY');

    const check = openSqlite(file);
    expect(await check.get<{ value: number }>('SELECT value FROM counter WHERE id = 1')).toEqual({ value: 80 });
    const counts = await check.all<{ writer: string; n: number }>('SELECT writer, COUNT(*) AS n FROM log GROUP BY writer ORDER BY writer');
    expect(counts).toEqual([{ writer: 'a', n: 40 }, { writer: 'b', n: 40 }]);
    await check.close();
  });
});

describe('secret material', () => {
  it('never reaches the database or the logs', async () => {
    const broker = await spawnBroker();
    const canary = `canary-plaintext-${newId()}`;
    const world = await makeWorld(broker.url, { deviceCount: 1, secretText: canary });
    const device = world.devices[0];
    const grant = world.secret.body.grants[0];
    if (device === undefined || grant === undefined) throw new Error('fixture missing');
    const dek = await openGrant(grant, world.secret.body, device.id, device.sealing);
    const dekBytes = dek.exportBytes();

    // A full enrollment and release with the canary secret.
    const code = `invite-code-${newId()}`;
    const inviteId = newId();
    await world.admin.createInvite({ id: inviteId, codeHash: toBase64Url(sha256(utf8Encode(code))), kind: 'device', name: 'x', expires: Math.floor(Date.now() / 1000) + 600 });
    const keys = await makeDeviceKeys();
    await new BrokerClient(broker.url, world.org.trust.org).submitEnrollment({
      inviteId, code, name: 'x', platform: 'web', keys: { signingKey: keys.signing.publicKey.toBase64Url(), sealingKey: keys.sealing.publicKey.toBase64Url() },
    });
    const made = await makeRequest(world);
    await world.consumerClient.submitRequest(made.signed);
    const [bundle] = await world.deviceClients[0]?.listPendingRequests() ?? [];
    if (bundle === undefined) throw new Error('no bundle');
    await world.deviceClients[0]?.submitApproval(made.signed.body.id, await decide(world, device, bundle));
    const status = await world.consumerClient.getRequest(made.signed.body.id);
    expect((await openRelease(world, made, status.approval ?? (() => { throw new Error('no approval'); })(), status.secrets ?? [])).get(SECRET_PATH)).toBe(canary);
    await broker.stop();

    const stored = ['broker.sqlite', 'broker.sqlite-wal', 'broker.sqlite-shm']
      .map((name) => join(broker.dataDir, name))
      .filter((path) => existsSync(path))
      .map((path) => readFileSync(path));
    const haystacks = [...stored, Buffer.from(broker.logs(), 'utf8')];
    const needles: [string, Buffer][] = [
      ['plaintext', Buffer.from(canary, 'utf8')],
      ['plaintext base64url', Buffer.from(toBase64Url(utf8Encode(canary)), 'utf8')],
      ['DEK', Buffer.from(dekBytes)],
      ['DEK base64url', Buffer.from(toBase64Url(dekBytes), 'utf8')],
      ['DEK hex', Buffer.from(toHex(dekBytes), 'utf8')],
      ['invite code', Buffer.from(code, 'utf8')],
      ['bearer token', Buffer.from(world.consumerClient.token ?? 'missing-token', 'utf8')],
    ];
    expect(stored.length).toBeGreaterThan(0);
    for (const [name, needle] of needles) {
      for (const haystack of haystacks) expect(haystack.includes(needle), name).toBe(false);
    }
    // The scan can fail: the canary's ciphertext is stored, and so is the request id.
    expect(stored.some((bytes) => bytes.includes(Buffer.from(made.signed.body.id, 'utf8')))).toBe(true);
    dek.wipe();
  });
});
