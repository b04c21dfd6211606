// The broker must never hold a secret's plaintext or its data key (DEK):
// not in its database, not in its log, not in its process memory. The test
// has both (the canary it wrote, and the DEK it opens from an approver's
// grant with that approver's keys) and searches for them in every form.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openGrant } from '../../src/protocol/index.js';
import { defined, denyPending, makeWorld, revokeLease, SECRET_PATH, startRequest, type World } from './world.js';

/** Returns the value in every encoding it could be stored or logged in. */
function encodings(bytes: Buffer): Record<string, string> {
  return {
    raw: bytes.toString('latin1'),
    hex: bytes.toString('hex'),
    HEX: bytes.toString('hex').toUpperCase(),
    base64: bytes.toString('base64'),
    base64url: bytes.toString('base64url'),
  };
}

function expectAbsent(haystack: string, where: string, secrets: Record<string, Buffer>): void {
  for (const [name, bytes] of Object.entries(secrets)) {
    for (const [form, text] of Object.entries(encodings(bytes))) {
      expect(haystack.includes(text), `${name} (${form}) found in ${where}`).toBe(false);
    }
  }
}

/** Sends SIGUSR2 to the broker and returns the text of the heap snapshot it writes. */
async function brokerHeapSnapshot(world: World): Promise<string> {
  const before = new Set(readdirSync(world.broker.diagnosticDir));
  world.broker.child.kill('SIGUSR2');
  const deadline = Date.now() + 30_000;
  let lastSize = -1;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const file = readdirSync(world.broker.diagnosticDir).find((name) => name.endsWith('.heapsnapshot') && !before.has(name));
    if (file === undefined) continue;
    const path = join(world.broker.diagnosticDir, file);
    const size = statSync(path).size;
    if (size > 0 && size === lastSize) {
      const text = readFileSync(path, 'latin1');
      if (text.trimEnd().endsWith('}')) return text;
    }
    lastSize = size;
  }
  throw new Error('the broker wrote no complete heap snapshot within 30 s');
}

describe('what the broker holds', () => {
  let world: World;
  let secrets: Record<string, Buffer>;
  let requests: string[];

  beforeAll(async () => {
    world = await makeWorld({ approvers: ['alice'] });

    // One release and one denial, so the broker has relayed both.
    const released = await startRequest(world, 'leak check: release');
    await world.approve('alice', ['y']);
    const output = await released.agent.done;
    expect(output.stdout).toBe(world.canary);
    await revokeLease(world, released.request);
    const denied = await startRequest(world, 'leak check: denial');
    await denyPending(world, 'alice');
    await denied.agent.done;
    requests = [released.request, denied.request];

    const client = await world.deviceClient('alice');
    const secret = defined((await client.getSecrets([SECRET_PATH]))[0], 'the stored secret');
    const device = world.approverState('alice').device;
    const grant = defined(secret.body.grants.find((item) => item.device === device), 'alice\'s grant');
    const keys = await world.deviceKeys('alice');
    try {
      const dek = await openGrant(grant, secret.body, device, keys.sealing);
      secrets = { canary: Buffer.from(world.canary, 'utf8'), dek: Buffer.from(dek.exportBytes()) };
      dek.wipe();
    } finally {
      keys.wipe();
    }
  }, 120_000);

  afterAll(async () => {
    await world.stop();
  });

  it('database has no plaintext or DEK', () => {
    const text = world.databaseText();
    expect(text).toContain(requests[0]);
    expectAbsent(text, 'broker.sqlite', secrets);
    // The write-ahead log contains recent pages until a checkpoint.
    for (const name of readdirSync(world.broker.dataDir)) {
      expectAbsent(readFileSync(join(world.broker.dataDir, name), 'latin1'), name, secrets);
    }
  });

  it('log has no plaintext or DEK', () => {
    const log = world.broker.stderr();
    expect(log).toContain(requests[1]);
    expectAbsent(log, 'the broker log', secrets);
  });

  it('heap snapshot has no plaintext or DEK', async () => {
    const snapshot = await brokerHeapSnapshot(world);
    // A snapshot follows a full GC, so only live strings remain. The broker's own module URL shows it is the broker's heap.
    expect(snapshot.length).toBeGreaterThan(1_000_000);
    expect(snapshot.includes('dist/broker/main.js')).toBe(true);
    expectAbsent(snapshot, 'the broker heap snapshot', secrets);
  });

  it('relayed traffic has no plaintext or DEK', () => {
    const wire = JSON.stringify(world.relay.recorded);
    expect(wire).toContain(requests[0]);
    expectAbsent(wire, 'traffic between the parties and the broker', secrets);
    expectAbsent(world.daemon.stderr(), 'the daemon log', secrets);
  });
});
