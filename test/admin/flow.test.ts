import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerClient, BrokerClientError } from '../../src/broker/client.js';
import { unlockDeviceKeys } from '../../src/approver/keys.js';
import { SigningPrivateKey, fromBase64Url, toBase64Url, utf8Decode, utf8Encode } from '../../src/protocol/index.js';
import { cli, cliOk, consumerFor, makeRequest, makeWorld, openReleased, PASSPHRASE, tempHome, type World } from './helpers.js';

describe('admin CLI and terminal approver, end to end', () => {
  let world: World;

  beforeAll(async () => {
    world = await makeWorld({ approvers: ['ben', 'cleo'] });
  }, 120_000);

  afterAll(async () => {
    await world.broker.stop();
  });

  it('init prints the org fingerprint and refuses to run twice', async () => {
    const again = await cli(world.admin, ['init', '--org', 'Acme', '--broker', world.broker.url]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
    expect(again.stderr).toContain('hint:');
  });

  it('approve with y releases a secret the consumer opens', async () => {
    const consumer = await consumerFor(world);
    const made = await makeRequest(consumer);
    const submitted = await consumer.client.submitRequest(made.signed);
    expect(submitted.eligible).toBe(2);

    const result = await cli(world.approvers.ben ?? '', ['approve'], { input: 'y\n' });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`approved ${made.signed.body.id} prod/db-primary lease 10m`);
    expect(result.stderr).toContain('prod/db-primary (v1)');
    expect(result.stderr).toContain('uid=1001');
    expect(result.stderr).toContain('/usr/bin/claude');
    expect(result.stderr).toContain('reason (the agent\'s words, unverified): "run the schema migration for ticket 42"');

    const plaintexts = await openReleased(world, consumer, made);
    expect(plaintexts.get('prod/db-primary')).toBe('postgres://app:s3cret@db/prod');
  });

  it('approve with n denies and the other approver sees nothing pending', async () => {
    const consumer = await consumerFor(world);
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    const result = await cli(world.approvers.cleo ?? '', ['approve', '--format', 'json'], { input: 'n\n' });
    expect(result.code).toBe(0);
    const outcome = JSON.parse(result.stdout.trim()) as { request: string; result: string };
    expect(outcome).toMatchObject({ request: made.signed.body.id, result: 'denied' });
    expect((await consumer.client.getRequest(made.signed.body.id)).state).toBe('denied');

    const other = await cli(world.approvers.ben ?? '', ['approve'], { input: 'y\n' });
    expect(other.code).toBe(0);
    expect(other.stdout).not.toContain(made.signed.body.id);
  });

  it('approve --watch decides a request pushed over the WebSocket', async () => {
    const child = spawn(process.execPath, [join(process.cwd(), 'dist/cli/main.js'), 'approve', '--watch'], {
      env: { PATH: process.env.PATH ?? '', STILLVAULT_HOME: world.approvers.ben ?? '', STILLVAULT_PASSPHRASE: PASSPHRASE },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
    const waitFor = async (check: () => boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr:\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    try {
      await waitFor(() => stderr.includes('Watching for requests'), 'the watch loop');
      const consumer = await consumerFor(world);
      const made = await makeRequest(consumer);
      await consumer.client.submitRequest(made.signed);
      await waitFor(() => stderr.includes(`Request ${made.signed.body.id}`), 'the request on screen');
      child.stdin.write('y\n');
      await waitFor(() => stdout.includes(`approved ${made.signed.body.id}`), 'the approval');
      expect((await openReleased(world, consumer, made)).get('prod/db-primary')).toBe('postgres://app:s3cret@db/prod');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('enroll rejects a token whose org id is not its key fingerprint', async () => {
    const token = (await cliOk(world.admin, ['approver', 'invite', 'mallory'])).trim();
    const payload = JSON.parse(utf8Decode(fromBase64Url(token.slice('svinv1.'.length)))) as Record<string, unknown>;
    const otherKey = await SigningPrivateKey.generate('org-identity');
    payload.identityKey = otherKey.publicKey.toBase64Url();
    const forged = `svinv1.${toBase64Url(utf8Encode(JSON.stringify(payload)))}`;

    const home = tempHome('forged');
    const result = await cli(home, ['approver', 'enroll', '--invite', forged]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('identity key has fingerprint');
    const status = await cli(home, ['approver', 'status']);
    expect(status.code).toBe(1);
  });

  it('rejected enrollment stops the member waiting', async () => {
    const token = (await cliOk(world.admin, ['approver', 'invite', 'dora'])).trim();
    const home = tempHome('dora');
    await cliOk(home, ['approver', 'enroll', '--invite', token]);
    const pending = JSON.parse(await cliOk(world.admin, ['enrollments', 'list', '--format', 'json'])) as { id: string; name: string }[];
    const id = pending.find((item) => item.name === 'dora')?.id ?? '';
    await cliOk(world.admin, ['enrollments', 'reject', id]);
    const status = await cli(home, ['approver', 'status', '--wait', '--timeout', '5s']);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain('rejected');
    const reused = await cli(tempHome('dora-again'), ['approver', 'enroll', '--invite', token]);
    expect(reused.code).toBe(1);
    expect(reused.stderr).toContain('rejected the invite');
  });

  it('wrong passphrase unlocks nothing', async () => {
    const admin = await cli(world.admin, ['policy', 'list'], { env: { STILLVAULT_PASSPHRASE: 'wrong' } });
    expect(admin.code).toBe(1);
    expect(admin.stderr).toContain('wrong passphrase');
    const approver = await cli(world.approvers.ben ?? '', ['approve'], { env: { STILLVAULT_PASSPHRASE: 'wrong' } });
    expect(approver.code).toBe(1);
    expect(approver.stderr).toContain('wrong passphrase');
  });

  it('policy set rejects an unknown approver', async () => {
    const result = await cli(world.admin, ['policy', 'set', 'other', '--paths', 'other/**', '--approvers', 'nobody']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no enrolled approver named "nobody"');
    const usage = await cli(world.admin, ['policy', 'set', 'other', '--paths', 'other/**', '--approvers', 'ben', '--max-lease', '10x']);
    expect(usage.code).toBe(2);
  });

  it('listings print parseable JSON', async () => {
    const approvers = JSON.parse(await cliOk(world.admin, ['approver', 'list', '--format', 'json'])) as { name: string; status: string }[];
    expect(approvers.map((item) => item.name).sort()).toEqual(['ben', 'cleo']);
    const daemons = JSON.parse(await cliOk(world.admin, ['daemon', 'list', '--format', 'json'])) as { name: string }[];
    expect(daemons.map((item) => item.name)).toEqual(['build-01']);
    const policies = JSON.parse(await cliOk(world.admin, ['policy', 'list', '--format', 'json'])) as { name: string; approverNames: string[] }[];
    expect(policies[0]?.approverNames.sort()).toEqual(['ben', 'cleo']);
    const secrets = JSON.parse(await cliOk(world.admin, ['secret', 'list', '--format', 'json'])) as { path: string; version: number }[];
    expect(secrets).toEqual([expect.objectContaining({ path: 'prod/db-primary', version: 1 })]);
    const history = JSON.parse(await cliOk(world.admin, ['secret', 'history', 'prod/db-primary', '--format', 'json'])) as unknown[];
    expect(history).toHaveLength(1);
    const enrollments = JSON.parse(await cliOk(world.admin, ['enrollments', 'list', '--state', 'done', '--format', 'json'])) as unknown[];
    expect(enrollments.length).toBeGreaterThanOrEqual(3);
    const tail = (await cliOk(world.admin, ['audit', 'tail', '--lines', '100', '--format', 'json'])).trim().split('\n').map((line) => JSON.parse(line) as { text: string });
    expect(tail.length).toBeGreaterThan(5);
  });

  it('audit tail tells the story in names', async () => {
    const tail = await cliOk(world.admin, ['audit', 'tail', '--lines', '200']);
    expect(tail).toContain('agent@build-01 requested prod/db-primary uid=1001 exe=/usr/bin/claude');
    expect(tail).toMatch(/push delivered to (ben|cleo)/);
    expect(tail).toContain('ben approved prod/db-primary, lease 10m');
    expect(tail).toContain('cleo denied prod/db-primary');
  });

  it('secret set and rm add versions', async () => {
    const set = await cli(world.admin, ['secret', 'set', 'prod/api-token'], { input: 'tok-123' });
    expect(set.code).toBe(0);
    expect(set.stdout).toBe('prod/api-token v1\n');
    expect(set.stdout + set.stderr).not.toContain('tok-123');
    expect((await cliOk(world.admin, ['secret', 'rm', 'prod/api-token'])).trim()).toBe('prod/api-token v2');
    const history = JSON.parse(await cliOk(world.admin, ['secret', 'history', 'prod/api-token', '--format', 'json'])) as { deleted: boolean }[];
    expect(history.map((item) => item.deleted)).toEqual([false, true]);
  });

  it('revoked approver can no longer authenticate', async () => {
    const home = world.approvers.cleo ?? '';
    const state = JSON.parse(readFileSync(join(home, 'approver', 'device.json'), 'utf8')) as { device: string; broker: string; org: string };
    expect((await cliOk(world.admin, ['approver', 'revoke', 'cleo'])).trim()).toBe(state.device);

    const keys = await unlockDeviceKeys(join(home, 'approver', 'device.key'), PASSPHRASE);
    const client = new BrokerClient(state.broker, state.org);
    const error = await client.authenticate('device', state.device, keys.signing).catch((caught: unknown) => caught);
    keys.wipe();
    expect(error).toBeInstanceOf(BrokerClientError);
    expect((error as BrokerClientError).code).toBe('auth_failed');

    const approve = await cli(home, ['approve'], { input: '' });
    expect(approve.code).toBe(1);
    const listed = JSON.parse(await cliOk(world.admin, ['approver', 'list', '--format', 'json'])) as { name: string; status: string }[];
    expect(listed.find((item) => item.name === 'cleo')?.status).toBe('revoked');
  });

  it('audit verify passes and keeps the head', async () => {
    const output = await cliOk(world.admin, ['audit', 'verify']);
    expect(output).toMatch(/^ok \d+ [A-Za-z0-9_-]{43}\n$/);
    const kept = JSON.parse(readFileSync(join(world.admin, 'admin', 'audit-head.json'), 'utf8')) as { head: { seq: number } };
    expect(kept.head.seq).toBe(Number(output.split(' ')[1]));
  });
});
