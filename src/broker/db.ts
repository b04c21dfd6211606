import Database from 'better-sqlite3';
import pg from 'pg';

/**
 * A thin query layer over SQLite (better-sqlite3) and PostgreSQL (pg). SQL is
 * written once with `?` placeholders; PostgreSQL gets `$1, $2, ...`. Write
 * transactions on SQLite start with BEGIN IMMEDIATE, so two writers never
 * fail with SQLITE_BUSY on a lock upgrade. `FOR UPDATE` is dropped on SQLite,
 * where the database lock already serialises writers.
 */

export type SqlValue = string | number | null;

export interface Queryable {
  all<T>(sql: string, params?: SqlValue[]): Promise<T[]>;
  get<T>(sql: string, params?: SqlValue[]): Promise<T | undefined>;
  run(sql: string, params?: SqlValue[]): Promise<{ changes: number }>;
}

export interface BrokerDatabase extends Queryable {
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs `work` in one write transaction; commits on success, rolls back on a throw. */
  write<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Serialises async critical sections. Guards the single SQLite connection. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();

  async run<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => { release = resolve; });
    await previous;
    try {
      return await work();
    } finally {
      release();
    }
  }
}

function stripForUpdate(sql: string): string {
  return sql.replace(/\s+FOR UPDATE\b/gi, '');
}

export function openSqlite(file: string): BrokerDatabase {
  const connection = new Database(file);
  connection.pragma('journal_mode = WAL');
  connection.pragma('busy_timeout = 5000');
  connection.pragma('foreign_keys = ON');
  connection.pragma('synchronous = NORMAL');
  const mutex = new Mutex();
  const statements = new Map<string, Database.Statement>();

  function prepare(sql: string): Database.Statement {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = connection.prepare(stripForUpdate(sql));
      statements.set(sql, statement);
    }
    return statement;
  }

  const direct: Queryable = {
    all: <T>(sql: string, params: SqlValue[] = []) => Promise.resolve(prepare(sql).all(...params) as T[]),
    get: <T>(sql: string, params: SqlValue[] = []) => Promise.resolve(prepare(sql).get(...params) as T | undefined),
    run: (sql: string, params: SqlValue[] = []) => {
      const statement = prepare(sql);
      if (!statement.reader) return Promise.resolve({ changes: statement.run(...params).changes });
      statement.all(...params);
      return Promise.resolve({ changes: 0 });
    },
  };

  return {
    dialect: 'sqlite',
    all: (sql, params) => mutex.run(() => direct.all(sql, params)),
    get: (sql, params) => mutex.run(() => direct.get(sql, params)),
    run: (sql, params) => mutex.run(() => direct.run(sql, params)),
    write: (work) => mutex.run(async () => {
      connection.exec('BEGIN IMMEDIATE');
      try {
        const result = await work(direct);
        connection.exec('COMMIT');
        return result;
      } catch (error) {
        if (connection.inTransaction) connection.exec('ROLLBACK');
        throw error;
      }
    }),
    close: () => mutex.run(() => {
      connection.close();
      return Promise.resolve();
    }),
  };
}

function toPostgresPlaceholders(sql: string): string {
  let index = 0;
  return sql.replace(/\?/g, () => `$${String(++index)}`);
}

const INT8_OID = 20;

/**
 * Opens a PostgreSQL pool. A `schema` query parameter in the URL selects the
 * search_path (the schema is created when missing); the rest goes to pg.
 */
export async function openPostgres(url: string): Promise<BrokerDatabase> {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get('schema');
  parsed.searchParams.delete('schema');
  if (schema !== null && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(`invalid schema name ${JSON.stringify(schema)}: use lower-case letters, digits and _`);
  }
  // BIGINT columns hold Unix times, counts and sequence numbers, all far below 2^53.
  const parseInt8 = (value: string): number => Number(value);
  const types = {
    getTypeParser(oid: number, format?: 'text' | 'binary'): unknown {
      if (oid === INT8_OID) return parseInt8;
      return (pg.types.getTypeParser as (oid: number, format: string) => unknown)(oid, format ?? 'text');
    },
  };
  if (schema !== null) {
    const setup = new pg.Client({ connectionString: parsed.toString() });
    await setup.connect();
    try {
      await setup.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    } finally {
      await setup.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: parsed.toString(),
    max: 10,
    types,
    ...(schema === null ? {} : { options: `-c search_path=${schema}` }),
  });
  // An idle client that loses its connection is dropped by the pool; the next query reconnects.
  pool.on('error', () => undefined);

  function queryable(client: pg.Pool | pg.PoolClient): Queryable {
    return {
      all: async <T>(sql: string, params: SqlValue[] = []) =>
        (await client.query(toPostgresPlaceholders(sql), params)).rows as T[],
      get: async <T>(sql: string, params: SqlValue[] = []) =>
        (await client.query(toPostgresPlaceholders(sql), params)).rows[0] as T | undefined,
      run: async (sql: string, params: SqlValue[] = []) =>
        ({ changes: (await client.query(toPostgresPlaceholders(sql), params)).rowCount ?? 0 }),
    };
  }

  const direct = queryable(pool);
  return {
    dialect: 'postgres',
    ...direct,
    write: async (work) => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        try {
          const result = await work(queryable(client));
          await client.query('COMMIT');
          return result;
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
