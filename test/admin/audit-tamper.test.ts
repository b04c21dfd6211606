import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliOk, makeWorld, spawnBroker, type World } from './helpers.js';

describe('audit verify against a tampered broker database', () => {
  let world: World;

  beforeAll(async () => {
    world = await makeWorld();
  }, 120_000);

  afterAll(async () => {
    await world.broker.stop();
  });

  it('names the sequence number of an edited row', async () => {
    const verified = await cliOk(world.admin, ['audit', 'verify']);
    expect(verified).toMatch(/^ok \d+ /);

    await world.broker.stop();
    const database = new Database(join(world.broker.dataDir, 'broker.sqlite'));
    const row = database.prepare('SELECT entry FROM audit WHERE seq = 3').get() as { entry: string };
    const entry = JSON.parse(row.entry) as { time: number };
    entry.time -= 3600;
    database.prepare('UPDATE audit SET entry = ? WHERE seq = 3').run(JSON.stringify(entry));
    database.close();
    world.broker = await spawnBroker(world.broker.dataDir, new URL(world.broker.url).host);

    const result = await cli(world.admin, ['audit', 'verify']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('verification failed at entry 3');
  });
});
