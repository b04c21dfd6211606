// Canonical JSON must survive storage: SQLite TEXT keeps bytes as given,
// PostgreSQL jsonb reorders members and normalises whitespace, and a
// signature must still verify after either.
import Database from 'better-sqlite3';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalize, verifyRequest } from '../../src/protocol/index.js';
import { at, makeRequest, makeWorld, NOW } from './fixtures.js';

// Strings without NUL (PostgreSQL text rejects \u0000) and numbers within
// the safe-integer range, which jsonb keeps exactly.
const jsonLeaf = fc.oneof(fc.string().filter((s) => !s.includes('\u0000')), fc.integer(), fc.boolean(), fc.constant(null));
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, jsonLeaf, fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(fc.string().filter((s) => !s.includes('\u0000')), tie('value'), { maxKeys: 5 })),
})).value;

describe('canonical JSON through storage', () => {
  const sqlite = new Database(':memory:');
  const client = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' });
  const table = `protocol_canonical_${process.pid}`;

  beforeAll(async () => {
    sqlite.exec('CREATE TABLE objects (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)');
    await client.connect();
    await client.query(`CREATE TEMP TABLE ${table} (id serial PRIMARY KEY, doc jsonb NOT NULL)`);
  });

  afterAll(async () => {
    sqlite.close();
    await client.end();
  });

  it('survives SQLite TEXT and PostgreSQL jsonb', async () => {
    await fc.assert(
      fc.asyncProperty(jsonValue, async (value) => {
        const expected = canonicalize(value);
        const row = sqlite.prepare('INSERT INTO objects (doc) VALUES (?) RETURNING doc').get(JSON.stringify(value)) as { doc: string };
        expect(canonicalize(JSON.parse(row.doc))).toBe(expected);
        const result = await client.query<{ doc: unknown }>(`INSERT INTO ${table} (doc) VALUES ($1::jsonb) RETURNING doc`, [JSON.stringify(value)]);
        expect(canonicalize(at(result.rows, 0).doc)).toBe(expected);
      }),
      { numRuns: 100 },
    );
  });

  it('a signed request verifies after a jsonb round trip', async () => {
    const world = await makeWorld();
    const { signed } = await makeRequest(world);
    const result = await client.query<{ doc: unknown; text: string }>(`INSERT INTO ${table} (doc) VALUES ($1::jsonb) RETURNING doc, doc::text AS text`, [JSON.stringify(signed)]);
    expect(at(result.rows, 0).text).not.toBe(JSON.stringify(signed));
    await verifyRequest(at(result.rows, 0).doc, world.trust, world.consumer, NOW);
  });
});
