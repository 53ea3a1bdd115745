import type pg from 'pg';
import type { Db } from '../db/pool';

// Rate-limit counts in Postgres (db/migrations/014): one row per bucket, shared by every API process.

/** A bucket's window as @fastify/rate-limit's stores answer it: hits so far, milliseconds left. */
export interface WindowCount {
  current: number;
  ttl: number;
}

/** The counting call did not answer (Postgres down, unreachable, or too slow): count unknown. */
export class RateLimitStoreUnavailable extends Error {
  constructor(cause: unknown) {
    super('the rate-limit counts could not be read', { cause });
    this.name = 'RateLimitStoreUnavailable';
  }
}

type Row = { hits: number; ttl_ms: number };
// Named: prepared once per connection, then only bound and executed.
const HIT = { name: 'velro_rate_limit_hit', text: 'SELECT hits, ttl_ms FROM rate_limit_hit($1, $2)' };
const PEEK = { name: 'velro_rate_limit_peek', text: 'SELECT hits, ttl_ms FROM rate_limit_peek($1)' };

/**
 * `query` answered within `timeoutMs`, waiting for a pooled connection included. The query's own
 * `query_timeout` makes pg drop the connection it was sent on, so a hung server does not keep it.
 */
async function withinTimeout(
  db: Db,
  query: { name: string; text: string },
  values: unknown[],
  timeoutMs: number,
): Promise<WindowCount> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  const config = { ...query, values, query_timeout: timeoutMs } as pg.QueryConfig;
  try {
    const { rows } = await Promise.race([db.query<Row>(config), timeout]);
    const row = rows[0]!;
    return { current: row.hits, ttl: row.ttl_ms };
  } catch (err) {
    throw new RateLimitStoreUnavailable(err);
  } finally {
    clearTimeout(timer);
  }
}

/** Counts one hit on `bucket`, opening a window of `windowMs` if none is open. */
export function hitRateLimit(
  db: Db,
  bucket: string,
  windowMs: number,
  timeoutMs: number,
): Promise<WindowCount> {
  return withinTimeout(db, HIT, [bucket, windowMs], timeoutMs);
}

/** The bucket's open window without counting: `{ current: 0, ttl: 0 }` when none is open. */
export function peekRateLimit(db: Db, bucket: string, timeoutMs: number): Promise<WindowCount> {
  return withinTimeout(db, PEEK, [bucket], timeoutMs);
}
