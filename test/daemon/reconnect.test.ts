// The daemon keeps a pending request across a broker restart: it reconnects
// with backoff and still receives the result, through the broker's
// redelivery or its own poll.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Approver, daemonEnv, defined, makeDaemonWorld, REPO, runCli, spawnDaemon, type DaemonProcess, type DaemonWorld } from './world.js';

let world: DaemonWorld;
let daemon: DaemonProcess;
let approver: Approver;
let restarted: ChildProcess | undefined;

beforeAll(async () => {
  world = await makeDaemonWorld({ 'prod/restart': 'restart-value' });
  daemon = await spawnDaemon(world);
  approver = new Approver(world);
  await approver.start();
});

afterAll(async () => {
  await approver.stop();
  await daemon.stop();
  await world.broker.stop();
  if (restarted !== undefined && restarted.exitCode === null) {
    const exited = new Promise((resolve) => restarted?.once('exit', resolve));
    restarted.kill('SIGTERM');
    await exited;
  }
});

/** Starts a broker on the same address and data directory as the first one. */
async function restartBroker(): Promise<ChildProcess> {
  const listen = new URL(world.broker.url).host;
  const child = spawn(process.execPath, ['dist/broker/main.js', '--listen', listen, '--data', world.broker.dataDir, '--sweep-interval-ms', '200'], {
    cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      if (stderr.includes('"event":"start"')) resolve();
    });
    child.once('exit', (code) => { reject(new Error(`restarted broker exited with ${String(code)}:\n${stderr}`)); });
  });
  return child;
}

describe('broker restart', () => {
  it('does not lose a pending request', async () => {
    approver.decision = 'ignore';
    const get = runCli(['get', 'prod/restart'], { env: daemonEnv(world) });
    await waitFor(() => approver.bundles.length > 0);
    const bundle = defined(approver.bundles.at(-1), 'pushed bundle');

    await approver.stop();
    await world.broker.stop();
    await waitFor(() => daemon.logs().includes('"event":"broker-disconnected"'));
    restarted = await restartBroker();

    const device = defined(world.devices[0], 'device');
    const client = defined(world.deviceClients[0], 'device client');
    await client.authenticate('device', device.id, device.signing);
    await client.submitApproval(bundle.request.body.id, await approver.decide(bundle, 'approve'));

    const result = await get;
    expect(result.code).toBe(0);
    expect(result.stdout.toString('utf8')).toBe('restart-value');
    expect(daemon.logs().match(/"event":"broker-connected"/g)?.length).toBeGreaterThanOrEqual(2);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
