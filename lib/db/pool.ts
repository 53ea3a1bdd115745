import pg from 'pg';

// Postgres int8 (bigint) arrives as text by default; credit amounts fit well inside 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** A pool logged in as velro_app (DATABASE_APP_URL): sees only the rows of app.user_id. */
export type Db = pg.Pool;
export type Tx = pg.PoolClient;

declare const systemLogin: unique symbol;
/**
 * A pool logged in as velro_system (DATABASE_SYSTEM_URL): the few explicit paths that act across
 * users (reconciler, admin commands, ledger check, bootstrap). A distinct type, so that an app pool
 * cannot be handed to withSystemTx by mistake.
 */
export type SystemDb = pg.Pool & { readonly [systemLogin]: true };

export interface PoolOptions {
  /** Carries the login: velro_app for createPool, velro_system for createSystemPool. */
  connectionString: string;
  max?: number;
  applicationName?: string;
  /** Let the process exit while the pool's connections are idle (tests' shared pools). */
  allowExitOnIdle?: boolean;
}

export function createPool(opts: PoolOptions, onError: (err: Error) => void = () => {}): Db {
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'velro',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    // A statement that runs longer than this is a bug or a lock pile-up; fail it, don't hang.
    statement_timeout: 30_000,
    idle_in_transaction_session_timeout: 60_000,
    allowExitOnIdle: opts.allowExitOnIdle,
  });
  // An idle pooled connection can be cut (server restart, network); without a listener pg would
  // crash the process. The pool replaces the connection on next use.
  pool.on('error', onError);
  return pool;
}

async function inTransaction<T>(
  db: Db,
  setup: (c: Tx) => Promise<unknown>,
  fn: (c: Tx) => Promise<T>,
): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    await setup(client);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Who a transaction acts for: the user row-level security scopes it to, and, for the audit trail
 * (team_audit_events, db/migrations/009), the request and API key it came with.
 */
export interface TxScope {
  userId: string;
  requestId?: string | null;
  apiKeyId?: string | null;
}

/**
 * Runs `fn` in a transaction that row-level security scopes to the user: every tenant query inside
 * sees and writes only that user's rows (and its teams' rows, by membership). The settings are
 * transaction-local, so they never leak to the next user of the pooled connection.
 */
export function withUserTx<T>(db: Db, scope: string | TxScope, fn: (c: Tx) => Promise<T>): Promise<T> {
  const s = typeof scope === 'string' ? { userId: scope } : scope;
  return inTransaction(
    db,
    (c) =>
      c.query(
        `SELECT set_config('app.user_id', $1, true), set_config('app.request_id', $2, true),
                set_config('app.api_key_id', $3, true)`,
        [s.userId, s.requestId ?? '', s.apiKeyId ?? ''],
      ),
    fn,
  );
}

/** A pool for the velro_system login (no SET ROLE: the login itself is the role). */
export function createSystemPool(opts: PoolOptions, onError?: (err: Error) => void): SystemDb {
  return createPool(opts, onError) as SystemDb;
}

/** Runs `fn` in a transaction of the velro_system login: the paths that act across users. */
export function withSystemTx<T>(db: SystemDb, fn: (c: Tx) => Promise<T>): Promise<T> {
  return inTransaction(db, async () => undefined, fn);
}
