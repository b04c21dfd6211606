// Attacks on the terminal approver by a malicious broker and by other local
// users: terminal escapes in broker-supplied text, requests decided after
// their expiry, and key files that other users can read.
import { spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { unlockDeviceKeys } from '../../src/approver/keys.js';
import { createRequest, newId, SealingPrivateKey, type RequestBody, type Signed } from '../../src/protocol/index.js';
import { cli, makeRequest, now, PASSPHRASE, type Consumer } from '../admin/helpers.js';
import type { Proxy } from './proxy.js';
import { startProxiedApprover, type ProxiedApprover } from './setup.js';

const CLI = join(new URL('../../', import.meta.url).pathname, 'dist/cli/main.js');
const ESCAPE = '\u001b';

describe('terminal approver hardening', () => {
  let setup: ProxiedApprover;
  let consumer: Consumer;
  let proxy: Proxy;
  let home: string;

  beforeAll(async () => {
    setup = await startProxiedApprover();
    ({ consumer, proxy, home } = setup);
  }, 120_000);

  afterEach(async () => {
    await setup.reset();
  });

  afterAll(async () => {
    await setup.stop();
  });

  function throughProxy(): void {
    setup.throughProxy();
  }

  it('escapes broker text on the terminal', async () => {
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    throughProxy();
    const injected = `${ESCAPE}[2J${ESCAPE}]0;owned${String.fromCharCode(7)}\u202eevil`;
    proxy.rewrite = (bundles) => bundles.map((bundle) => {
      const request = bundle.request as Signed<RequestBody>;
      return { ...bundle, request: { ...request, body: { ...request.body, id: injected } } };
    });
    const result = await cli(home, ['approve', '--format', 'table'], { input: 'y\n' });
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('refused');
    expect(result.stdout).not.toContain(ESCAPE);
    expect(result.stderr).not.toContain(ESCAPE);
    expect(result.stdout).not.toContain('\u202e');
    expect(result.stderr).not.toContain('\u202e');
    expect(result.stderr).toContain('\\u{1b}[2J');
  });

  it('refuses a request expired within the clock skew', async () => {
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    // Expired 30 s ago: inside the 120 s leeway that signature checks allow.
    const late = await createRequest(consumer.hostKey, {
      ...made.signed.body, id: newId(), ephemeralKey: ephemeral.publicKey.toBase64Url(), created: now() - 330, expires: now() - 30,
    });
    throughProxy();
    proxy.rewrite = (bundles) => bundles.map((bundle) => ({ ...bundle, request: late }));
    const result = await cli(home, ['approve', '--format', 'json'], { input: 'y\n' });
    expect(result.code).toBe(3);
    expect(JSON.parse(result.stdout.trim().split('\n')[0] ?? '{}')).toMatchObject({ request: late.body.id, result: 'refused', code: 'expired' });
  });

  it('refuses a decision made after expiry', async () => {
    const made = await makeRequest(consumer, { created: now(), expires: now() + 3 });
    await consumer.client.submitRequest(made.signed);
    const child = spawn(process.execPath, [CLI, 'approve', '--format', 'json'], {
      env: { PATH: process.env.PATH ?? '', STILLVAULT_HOME: home, STILLVAULT_PASSPHRASE: PASSPHRASE },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString('utf8'); });
    const shown = new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        if (stderr.includes(`Request ${made.signed.body.id}`)) resolve();
      });
    });
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    await shown;
    // The person answers only after the request expired.
    const wait = (made.signed.body.expires + 1) * 1000 - Date.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
    child.stdin.end('y\n');
    expect(await closed).toBe(3);
    expect(JSON.parse(stdout.trim().split('\n')[0] ?? '{}')).toMatchObject({ request: made.signed.body.id, result: 'refused', code: 'expired' });
  });

  it('rejects a key file that others can read', async () => {
    const keyFile = join(home, 'approver', 'device.key');
    chmodSync(keyFile, 0o644);
    // Wipe any keys at once and compare only the error code, so a failure never prints key material.
    const unlock = () => unlockDeviceKeys(keyFile, PASSPHRASE).then((keys) => { keys.wipe(); return 'unlocked'; }, (error: unknown) => (error as { code?: unknown }).code);
    expect(await unlock()).toBe('key_file_unsafe');
    chmodSync(keyFile, 0o600);
    expect(await unlock()).toBe('unlocked');
  });
});
