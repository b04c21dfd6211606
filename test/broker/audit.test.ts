// The audit chain verifier against a chain a real broker built, and against
// every way of tampering with it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SigningPublicKey } from '../../src/protocol/index.js';
import { hashAuditEntry, type AuditEntry } from '../../src/broker/audit.js';
import { AuditChainError, verifyAuditChain } from '../../src/broker/audit-verify.js';
import type { Signed, AuditHeadBody } from '../../src/protocol/index.js';
import { decide, makeRequest, makeWorld, spawnBroker, type BrokerProcess } from './fixtures.js';

type Listed = { entry: AuditEntry; hash: string };

let broker: BrokerProcess;
let entries: Listed[];
let signedHead: Signed<AuditHeadBody>;
let brokerKey: SigningPublicKey;

function copy(list: Listed[]): Listed[] {
  return JSON.parse(JSON.stringify(list)) as Listed[];
}

/** Recomputes prev links and hashes from `from` on, as a broker rewriting history would. */
function rehash(list: Listed[], from: number): Listed[] {
  for (let i = from; i < list.length; i++) {
    const item = list[i] as Listed;
    item.entry.prev = i === 0 ? null : (list[i - 1] as Listed).hash;
    item.hash = hashAuditEntry(item.entry);
  }
  return list;
}

async function expectBroken(promise: Promise<unknown>, code: string, seq: number): Promise<void> {
  const error = await promise.then(() => null, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(AuditChainError);
  expect((error as AuditChainError).code).toBe(code);
  expect((error as AuditChainError).seq).toBe(seq);
}

beforeAll(async () => {
  broker = await spawnBroker();
  const world = await makeWorld(broker.url, { deviceCount: 2 });
  const head = (await world.consumerClient.auditEntries()).head.body;
  // The request carries the head its author saw, weaving its signature into the chain.
  const made = await makeRequest(world, { auditHead: { seq: head.seq, hash: head.hash } });
  await world.consumerClient.submitRequest(made.signed);
  const [bundle] = await world.deviceClients[0]?.listPendingRequests() ?? [];
  if (bundle === undefined || world.devices[0] === undefined) throw new Error('no bundle');
  await world.deviceClients[0]?.acknowledgeRequest(made.signed.body.id);
  await world.deviceClients[0]?.submitApproval(made.signed.body.id, await decide(world, world.devices[0], bundle));
  const listed = await world.admin.auditEntries();
  entries = listed.entries;
  signedHead = listed.head;
  brokerKey = SigningPublicKey.fromBase64Url((await world.admin.getOrg()).brokerKey);
});

afterAll(async () => {
  await broker.stop();
});

describe('verifyAuditChain', () => {
  it('accepts the chain the broker built', async () => {
    expect(entries.map((item) => item.entry.type)).toEqual([
      'org-registered', 'certificate-stored', 'certificate-stored', 'certificate-stored', 'policy-stored', 'secret-stored',
      'request-created', 'request-delivered', 'approval-accepted',
    ]);
    const head = await verifyAuditChain(entries, { signedHead, brokerKey, trustedHead: { seq: 3, hash: (entries[2] as Listed).hash } });
    expect(head).toEqual({ seq: signedHead.body.seq, hash: signedHead.body.hash });
  });

  it('detects a changed entry', async () => {
    const changed = copy(entries);
    (changed[4] as Listed).entry.actor = 'admin:someone-else';
    await expectBroken(verifyAuditChain(changed), 'audit_hash_mismatch', 5);
  });

  it('detects reordered entries', async () => {
    const reordered = copy(entries);
    [reordered[1], reordered[2]] = [reordered[2] as Listed, reordered[1] as Listed];
    await expectBroken(verifyAuditChain(reordered), 'audit_sequence', 2);
  });

  it('detects a removed middle entry', async () => {
    const removed = copy(entries);
    removed.splice(3, 1);
    await expectBroken(verifyAuditChain(removed), 'audit_sequence', 4);
  });

  it('detects a removed middle entry after renumbering', async () => {
    const removed = copy(entries);
    removed.splice(3, 1);
    removed.forEach((item, index) => { item.entry.seq = index + 1; });
    await expectBroken(verifyAuditChain(removed), 'audit_prev_mismatch', 4);
  });

  it('detects a removed tail against a kept head', async () => {
    const trimmed = copy(entries).slice(0, -2);
    await expect(verifyAuditChain(trimmed)).resolves.toMatchObject({ seq: entries.length - 2 });
    const kept = { seq: entries.length, hash: (entries[entries.length - 1] as Listed).hash };
    await expectBroken(verifyAuditChain(trimmed, { trustedHead: kept }), 'audit_truncated', entries.length - 1);
    await expectBroken(verifyAuditChain(trimmed, { signedHead, brokerKey }), 'audit_truncated', entries.length - 1);
  });

  it('detects all entries removed against a kept head', async () => {
    const kept = { seq: 2, hash: (entries[1] as Listed).hash };
    await expectBroken(verifyAuditChain([], { trustedHead: kept }), 'audit_truncated', 1);
  });

  it('detects a rewritten history by its kept head', async () => {
    const rewritten = rehash(copy(entries).map((item, index) => {
      if (index === 7) item.entry.time += 1;
      return item;
    }), 7);
    await expect(verifyAuditChain(rewritten)).resolves.toMatchObject({ seq: entries.length });
    const kept = { seq: 8, hash: (entries[7] as Listed).hash };
    await expectBroken(verifyAuditChain(rewritten, { trustedHead: kept }), 'audit_head_mismatch', 8);
  });

  it('detects a fork through a signed audit head', async () => {
    // Rewrite entry 2 and rehash everything after it: the chain is
    // self-consistent, but the request signed the old head.
    const forked = copy(entries);
    (forked[1] as Listed).entry.time += 1;
    rehash(forked, 1);
    const requestSeq = forked.findIndex((item) => item.entry.type === 'request-created') + 1;
    await expectBroken(verifyAuditChain(forked), 'audit_fork', requestSeq);
  });

  it('detects a forged signed head', async () => {
    const forged = { ...signedHead, body: { ...signedHead.body, seq: signedHead.body.seq - 1 } };
    await expectBroken(verifyAuditChain(entries, { signedHead: forged, brokerKey }), 'bad_signature', signedHead.body.seq - 1);
  });

  it('rejects malformed entries', async () => {
    await expectBroken(verifyAuditChain([{ entry: 5, hash: 'x' }]), 'audit_malformed', 1);
  });
});
