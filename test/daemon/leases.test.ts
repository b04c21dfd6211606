import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { RequestFlow } from '../../src/daemon/flow.js';
import { LeaseStore, type Lease } from '../../src/daemon/leases.js';
import { DaemonService, type ServiceOptions } from '../../src/daemon/service.js';
import { SecretBytes } from '../../src/protocol/index.js';
import { makeOrg } from '../broker/fixtures.js';

function lease(id: string, expires: number): Lease {
  return { id, owner: { uid: 1000, exe: '/usr/bin/agent' }, paths: ['prod/db'], granted: expires - 60, expires };
}

describe('LeaseStore', () => {
  it('serves only the same uid and executable', () => {
    const store = new LeaseStore({ clock: () => 1_000_000 });
    store.add(lease('a', 2000), new Map([['prod/db', SecretBytes.fromString('value')]]));
    expect(store.find({ uid: 1000, exe: '/usr/bin/agent' }, 'prod/db')?.value.exposeString()).toBe('value');
    expect(store.find({ uid: 1000, exe: '/usr/bin/other' }, 'prod/db')).toBeUndefined();
    expect(store.find({ uid: 1001, exe: '/usr/bin/agent' }, 'prod/db')).toBeUndefined();
    expect(store.find({ uid: 1000, exe: '/usr/bin/agent' }, 'prod/other')).toBeUndefined();
    store.clear();
  });

  it('wipes values on revocation', () => {
    const ended: string[] = [];
    const store = new LeaseStore({ clock: () => 1_000_000, onEnd: (ended_, reason) => { ended.push(`${ended_.id}:${reason}`); } });
    const value = SecretBytes.fromString('value');
    store.add(lease('a', 2000), new Map([['prod/db', value]]));
    expect(store.revoke('a')).toBe(true);
    expect(value.wiped).toBe(true);
    expect(store.revoke('a')).toBe(false);
    expect(ended).toEqual(['a:revoked']);
  });

  it('never serves past the hard expiry', () => {
    let nowMs = 1_000_000;
    const store = new LeaseStore({ clock: () => nowMs });
    const value = SecretBytes.fromString('value');
    store.add(lease('a', 1010), new Map([['prod/db', value]]));
    expect(store.remaining(lease('a', 1010))).toBe(10);
    nowMs = 1_010_000;
    expect(store.find({ uid: 1000, exe: '/usr/bin/agent' }, 'prod/db')).toBeUndefined();
    expect(value.wiped).toBe(true);
    expect(store.remaining(lease('a', 1010))).toBe(0);
  });

  it('lists leases without values', () => {
    const store = new LeaseStore({ clock: () => 1_000_000 });
    store.add(lease('a', 1100), new Map([['prod/db', SecretBytes.fromString('value')]]));
    const listed = store.list(1000);
    expect(listed).toEqual([{ ...lease('a', 1100), remaining: 100 }]);
    expect(JSON.stringify(listed)).not.toContain('value');
    store.clear();
  });
});

describe('DaemonService.handleBrokerMessage', () => {
  it('keeps a lease on an unsigned revocation', async () => {
    const org = await makeOrg();
    const leases = new LeaseStore();
    const value = SecretBytes.fromString('value');
    leases.add(lease('req-1', Date.now() / 1000 + 600), new Map([['prod/db', value]]));
    const routed: string[] = [];
    // Only the identity, the lease store and the logger take part; the flow records what is routed past them.
    const service = new DaemonService({
      identity: { trust: org.trust },
      leases,
      logger: pino({ level: 'silent' }),
      flow: { handleMessage: (message: { type: string }) => { routed.push(message.type); } } as unknown as RequestFlow,
    } as unknown as ServiceOptions);

    service.handleBrokerMessage({ type: 'lease-revoked', request: 'req-1', revocation: null });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(value.wiped).toBe(false);
    expect(leases.get('req-1')).toBeDefined();

    service.handleBrokerMessage({ type: 'result', request: 'req-2' });
    expect(routed).toEqual(['result']);
    leases.clear();
  });
});
