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
  // A pooled connection can be cut (server restart, network). Idle, pg-pool reports it here and
  // replaces the connection on next use.
  pool.on('error', onError);
  // Checked out, the client itself emits 'error' (pg-pool removes its own listener while a client is
  // lent), and with no listener that crashes the process: a worker died so in a Postgres restart.
  // The query in flight fails with the error anyway, and the pool discards the broken client.
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}

/** `begin` opens the transaction (BEGIN, and whatever must run first: one round trip). */
async function inTransaction<T>(db: Db, begin: string, fn: (c: Tx) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query(begin);
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
  // BEGIN and the settings in one simple query (one round trip), so the values are literals:
  // escapeLiteral quotes them whatever they hold.
  const set = (name: string, value: string) => `set_config('${name}', ${pg.escapeLiteral(value)}, true)`;
  return inTransaction(
    db,
    `BEGIN; SELECT ${set('app.user_id', s.userId)}, ${set('app.request_id', s.requestId ?? '')},
       ${set('app.api_key_id', s.apiKeyId ?? '')}`,
    fn,
  );
}

/** A pool for the velro_system login (no SET ROLE: the login itself is the role). */
export function createSystemPool(opts: PoolOptions, onError?: (err: Error) => void): SystemDb {
  return createPool(opts, onError) as SystemDb;
}

/** Runs `fn` in a transaction of the velro_system login: the paths that act across users. */
export function withSystemTx<T>(db: SystemDb, fn: (c: Tx) => Promise<T>): Promise<T> {
  return inTransaction(db, 'BEGIN', fn);
}

/**
 * A connection of the pool's login and settings that is not the pool's: for a session that lives
 * on its own (LISTEN). Its queries fail after `queryTimeoutMs` rather than hang on a dead link.
 */
export function dedicatedClient(db: Db, queryTimeoutMs = 5_000): pg.Client {
  return new pg.Client({ ...db.options, query_timeout: queryTimeoutMs, keepAlive: true });
}
