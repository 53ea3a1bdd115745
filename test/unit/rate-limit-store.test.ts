import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Db } from '../../lib/db/pool';
import { freePort } from '../../lib/net/free-port';
import { sharedRateLimitStore } from '../../lib/rate-limits/fastify-store';
import {
  hitRateLimit,
  peekRateLimit,
  RateLimitStoreUnavailable,
  type WindowCount,
} from '../../lib/rate-limits/store';
import { systemDb, testConfig, testDb } from '../support/context';

const TIMEOUT_MS = 2_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The counts in Postgres (db/migrations/014), through the velro_app login as the API has it. */
describe('rate-limit store', () => {
  let db: Db;
  let other: Db;
  beforeAll(() => {
    const config = testConfig();
    db = testDb(config);
    other = testDb(config);
  });
  afterAll(async () => {
    await db?.end();
    await other?.end();
  });
  const bucket = () => `test-${randomUUID()}|user:x`;

  it('counts hits in one window and says how long it has left; peeking does not count', async () => {
    const b = bucket();
    expect(await peekRateLimit(db, b, TIMEOUT_MS)).toEqual({ current: 0, ttl: 0 });
    const hits: WindowCount[] = [];
    for (let i = 0; i < 3; i++) hits.push(await hitRateLimit(db, b, 60_000, TIMEOUT_MS));
    expect(hits.map((h) => h.current)).toEqual([1, 2, 3]);
    for (const h of hits) {
      expect(h.ttl).toBeGreaterThan(55_000);
      expect(h.ttl).toBeLessThanOrEqual(60_000);
    }
    // The window does not move with later hits.
    expect(hits[2]!.ttl).toBeLessThanOrEqual(hits[0]!.ttl);
    const peeked = await peekRateLimit(other, b, TIMEOUT_MS);
    expect(peeked.current).toBe(3);
    expect(peeked.ttl).toBeLessThanOrEqual(hits[2]!.ttl);
    expect((await peekRateLimit(db, b, TIMEOUT_MS)).current).toBe(3);
    expect((await hitRateLimit(other, b, 60_000, TIMEOUT_MS)).current).toBe(4);
  });

  it('opens a new window at the first hit after the last one ended', async () => {
    const b = bucket();
    expect((await hitRateLimit(db, b, 300, TIMEOUT_MS)).current).toBe(1);
    expect((await hitRateLimit(db, b, 300, TIMEOUT_MS)).current).toBe(2);
    await sleep(350);
    expect(await peekRateLimit(db, b, TIMEOUT_MS)).toEqual({ current: 0, ttl: 0 });
    const fresh = await hitRateLimit(db, b, 300, TIMEOUT_MS);
    expect(fresh.current).toBe(1);
    expect(fresh.ttl).toBeGreaterThan(200);
  });

  it('counts concurrent hits from two pools exactly once each', async () => {
    const b = bucket();
    const counts = await Promise.all(
      Array.from({ length: 40 }, (_, i) => hitRateLimit(i % 2 ? db : other, b, 60_000, TIMEOUT_MS)),
    );
    expect(counts.map((c) => c.current).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
  });

  it('deletes ended windows as new buckets open, a few at a time', async () => {
    const prefix = `sweep-${randomUUID()}`;
    const rows = async (kind: string) =>
      (
        await systemDb().query<{ n: number }>(
          'SELECT count(*)::int AS n FROM rate_limit_counts WHERE bucket LIKE $1',
          [`${prefix}|${kind}-%`],
        )
      ).rows[0]!.n;
    for (let i = 0; i < 10; i++) await hitRateLimit(db, `${prefix}|old-${i}`, 1, TIMEOUT_MS);
    // Each deleted up to 4 ended ones (its elders), but not itself.
    expect(await rows('old')).toBeGreaterThan(0);
    await sleep(5);
    // Other tests' ended windows are deleted too; enough new buckets clear these ten.
    const ended = async () =>
      (
        await systemDb().query<{ n: number }>(
          'SELECT count(*)::int AS n FROM rate_limit_counts WHERE window_ends_at <= now()',
        )
      ).rows[0]!.n;
    const before = await ended();
    for (let i = 0; i < Math.ceil(before / 4) + 5; i++) {
      await hitRateLimit(db, `${prefix}|new-${i}`, 60_000, TIMEOUT_MS);
    }
    expect(await rows('old')).toBe(0);
    expect(await rows('new')).toBe(Math.ceil(before / 4) + 5);
  });

  it('gives velro_app no rights on the table itself, and refuses nonsense windows and buckets', async () => {
    await expect(db.query('SELECT * FROM rate_limit_counts')).rejects.toThrow(/permission denied/);
    await expect(db.query("DELETE FROM rate_limit_counts WHERE bucket <> ''")).rejects.toThrow(
      /permission denied/,
    );
    await expect(db.query('SELECT * FROM rate_limit_hit($1, 0)', [bucket()])).rejects.toThrow(/window/);
    await expect(db.query('SELECT * FROM rate_limit_hit($1, 60000)', [''])).rejects.toThrow(/bucket/);
  });
});

describe('rate-limit store when Postgres does not answer', () => {
  it('fails at once when nothing listens, and within its timeout when the server never answers', async () => {
    const closed = createPool({
      connectionString: `postgres://velro_app:x@127.0.0.1:${await freePort()}/velro`,
    });
    await expect(hitRateLimit(closed, 'b', 60_000, TIMEOUT_MS)).rejects.toBeInstanceOf(
      RateLimitStoreUnavailable,
    );
    await closed.end();

    // Accepts connections and never says a word: pg would wait connectionTimeoutMillis (10 s).
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const hung = createPool({ connectionString: `postgres://velro_app:x@127.0.0.1:${port}/velro` });
    const started = Date.now();
    await expect(peekRateLimit(hung, 'b', 300)).rejects.toBeInstanceOf(RateLimitStoreUnavailable);
    expect(Date.now() - started).toBeLessThan(1_000);
    for (const s of sockets) s.destroy();
    silent.close();
    await hung.end().catch(() => undefined);
  });

  it('hands the limiter the error `unavailable` makes, never a count', async () => {
    const closed = createPool({
      connectionString: `postgres://velro_app:x@127.0.0.1:${await freePort()}/velro`,
    });
    const refusal = new Error('refused');
    const Store = sharedRateLimitStore({
      db: closed,
      deployment: 'test',
      timeoutMs: TIMEOUT_MS,
      unavailable: () => refusal,
    });
    const store = new Store({}) as InstanceType<typeof Store> & {
      read(key: string, cb: (err: Error | null, res?: WindowCount) => void): void;
    };
    const viaCallback = (fn: (cb: (err: Error | null, res?: WindowCount) => void) => void) =>
      new Promise<{ err: Error | null; res?: WindowCount }>((resolve) =>
        fn((err, res) => resolve({ err, res })),
      );
    expect(await viaCallback((cb) => store.incr('k', cb, 60_000, 10))).toEqual({
      err: refusal,
      res: undefined,
    });
    expect(await viaCallback((cb) => store.read('k', cb))).toEqual({ err: refusal, res: undefined });
    await closed.end();
  });
});
