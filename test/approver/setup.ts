// One admin world with approver ben behind a tampering proxy, shared by the
// approver test files: each file starts one, resets it after every test and
// stops it at the end.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, consumerFor, makeWorld, type Consumer, type World } from '../admin/helpers.js';
import { startProxy, type Proxy } from './proxy.js';

export interface ProxiedApprover {
  world: World;
  consumer: Consumer;
  proxy: Proxy;
  home: string;
  seenFile: string;
  /** Points ben's state at the proxy instead of the broker. */
  throughProxy(): void;
  /** Restores ben's state, seen.json and key file mode, clears the rewrite and denies whatever a test left pending. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export async function startProxiedApprover(): Promise<ProxiedApprover> {
  const world = await makeWorld();
  const consumer = await consumerFor(world);
  const proxy = await startProxy(world.broker.url);
  const home = world.approvers.ben ?? '';
  const stateFile = join(home, 'approver', 'device.json');
  const seenFile = join(home, 'approver', 'seen.json');
  const originalState = readFileSync(stateFile, 'utf8');

  return {
    world, consumer, proxy, home, seenFile,
    throughProxy() {
      const state = JSON.parse(originalState) as Record<string, unknown>;
      writeFileSync(stateFile, JSON.stringify({ ...state, broker: proxy.url }));
    },
    async reset() {
      writeFileSync(stateFile, originalState);
      writeFileSync(seenFile, JSON.stringify({ v: 1, policyVersions: {}, secretVersions: {}, requests: {}, auditHead: null }));
      chmodSync(join(home, 'approver', 'device.key'), 0o600);
      proxy.rewrite = (bundles) => bundles;
      // Settle anything a test left pending, so the next test gets only its own request.
      await cli(home, ['approve', '--format', 'json'], { input: 'n\nn\nn\n' });
    },
    async stop() {
      await proxy.close();
      await world.broker.stop();
    },
  };
}
