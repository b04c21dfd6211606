import { writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRequest, newId, SealingPrivateKey, SigningPrivateKey, type PolicyBody, type RequestBody, type Signed } from '../../src/protocol/index.js';
import { cli, makeRequest, now, type Consumer } from '../admin/helpers.js';
import type { Proxy } from './proxy.js';
import { startProxiedApprover, type ProxiedApprover } from './setup.js';

interface Outcome {
  request: string;
  result: string;
  code?: string;
}

function outcomes(stdout: string): Outcome[] {
  return stdout.trim().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Outcome);
}

describe('terminal approver refuses what does not verify', () => {
  let setup: ProxiedApprover;
  let consumer: Consumer;
  let proxy: Proxy;
  let home: string;
  let seenFile: string;

  beforeAll(async () => {
    setup = await startProxiedApprover();
    ({ consumer, proxy, home, seenFile } = setup);
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

  async function approveOnce(): Promise<{ code: number; outcomes: Outcome[]; stderr: string }> {
    const result = await cli(home, ['approve', '--format', 'json'], { input: 'y\n' });
    return { code: result.code, outcomes: outcomes(result.stdout), stderr: result.stderr };
  }

  it('refuses a request id it decided before', async () => {
    const made = await makeRequest(consumer);
    writeFileSync(seenFile, JSON.stringify({ v: 1, policyVersions: {}, secretVersions: {}, requests: { [made.signed.body.id]: now() + 3600 }, auditHead: null }));
    await consumer.client.submitRequest(made.signed);
    const result = await approveOnce();
    expect(result.code).toBe(3);
    expect(result.outcomes).toEqual([expect.objectContaining({ request: made.signed.body.id, result: 'refused', code: 'request_replayed' })]);
    // Ben is the only eligible approver, so his refusal ends the request.
    const status = await consumer.client.getRequest(made.signed.body.id);
    expect(status.state).toBe('refused');
    expect(status.refusals).toEqual(['request_replayed']);
  });

  it('reports a refusal to the broker once', async () => {
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    const results = consumer.client.connect();
    const events = await results;
    try {
      throughProxy();
      proxy.rewrite = (bundles) => bundles.map((bundle) => {
        const request = bundle.request as Signed<RequestBody>;
        return { ...bundle, request: { ...request, body: { ...request.body, reason: 'routine read-only check' } } };
      });
      const first = await approveOnce();
      expect(first.outcomes[0]).toMatchObject({ request: made.signed.body.id, result: 'refused', code: 'bad_signature' });

      let result;
      while (result === undefined) {
        const event = await events.next(10_000);
        if (event.type === 'result' && event.request === made.signed.body.id) result = event;
      }
      expect(result).toMatchObject({ state: 'refused', reason: 'refused', codes: ['bad_signature'] });

      const second = await approveOnce();
      expect(second.code).toBe(0);
      expect(second.outcomes).toEqual([]);
      expect(second.stderr).toContain('No pending requests');
    } finally {
      await events.close();
    }
  });

  it('refuses a policy older than the version seen', async () => {
    const made = await makeRequest(consumer);
    writeFileSync(seenFile, JSON.stringify({ v: 1, policyVersions: { prod: 7 }, secretVersions: {}, requests: {}, auditHead: null }));
    await consumer.client.submitRequest(made.signed);
    const result = await approveOnce();
    expect(result.code).toBe(3);
    expect(result.outcomes[0]).toMatchObject({ result: 'refused', code: 'policy_rollback' });
  });

  it('refuses a secret version older than the version seen', async () => {
    const made = await makeRequest(consumer);
    writeFileSync(seenFile, JSON.stringify({ v: 1, policyVersions: {}, secretVersions: { 'prod/db-primary': 4 }, requests: {}, auditHead: null }));
    await consumer.client.submitRequest(made.signed);
    const result = await approveOnce();
    expect(result.outcomes[0]).toMatchObject({ result: 'refused', code: 'secret_rollback' });
  });

  it('refuses a request whose reason the broker edited', async () => {
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    throughProxy();
    proxy.rewrite = (bundles) => bundles.map((bundle) => {
      const request = bundle.request as Signed<RequestBody>;
      return { ...bundle, request: { ...request, body: { ...request.body, reason: 'routine read-only check' } } };
    });
    const result = await approveOnce();
    expect(result.code).toBe(3);
    expect(result.outcomes[0]).toMatchObject({ request: made.signed.body.id, result: 'refused', code: 'bad_signature' });
    expect(result.stderr).not.toContain('routine read-only check');
  });

  it('refuses a request signed by a key the org never certified', async () => {
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    const rogue = await SigningPrivateKey.generate('consumer-host');
    const forged = await createRequest(rogue, { ...made.signed.body, id: made.signed.body.id });
    throughProxy();
    proxy.rewrite = (bundles) => bundles.map((bundle) => ({ ...bundle, request: forged }));
    const result = await approveOnce();
    expect(result.outcomes[0]).toMatchObject({ result: 'refused', code: 'untrusted_signer' });
  });

  it('refuses an expired request', async () => {
    const ephemeral = await SealingPrivateKey.generate('request-ephemeral');
    const made = await makeRequest(consumer);
    await consumer.client.submitRequest(made.signed);
    // The broker drops expired requests itself, so the malicious broker serves an old, validly signed one.
    const old = await createRequest(consumer.hostKey, {
      ...made.signed.body, id: newId(), ephemeralKey: ephemeral.publicKey.toBase64Url(), created: now() - 1000, expires: now() - 400,
    });
    throughProxy();
    proxy.rewrite = (bundles) => bundles.map((bundle) => ({ ...bundle, request: old }));
    const result = await approveOnce();
    expect(result.outcomes[0]).toMatchObject({ result: 'refused', code: 'expired' });
  });

  it('refuses a bundle whose policy does not belong to the secret', async () => {
    const made = await makeRequest(consumer, { paths: ['prod/db-primary'] });
    await consumer.client.submitRequest(made.signed);
    throughProxy();
    proxy.rewrite = (bundles) => bundles.map((bundle) => {
      const policy = bundle.policy as Signed<PolicyBody>;
      return { ...bundle, policy: { ...policy, body: { ...policy.body, version: policy.body.version + 1 } } };
    });
    const result = await approveOnce();
    expect(result.outcomes[0]).toMatchObject({ result: 'refused', code: 'bad_signature' });
  });
});
