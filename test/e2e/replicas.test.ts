import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../api/app';
import { createStorage } from '../../lib/wiring/from-config';
import type { Db } from '../../lib/db/pool';
import { createUser, startHarness, testDb, testStack, waitFor, type Harness } from '../support/context';
import { parseEvent, type SseEvent } from '../support/sse';

const MAX = 8;
const AUTH_MAX = 3;

type User = Awaited<ReturnType<typeof createUser>>;
interface Answer {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * Two API processes of one deployment (same configuration, database and Temporal; each with its own
 * pool, Temporal client, credential cache and event streams), called over real HTTP: what one
 * replica counts, keeps, starts or revokes, the other sees.
 */
describe('two API replicas behave as one API', () => {
  let h: Harness;
  let second: { app: App; db: Db; connection: Connection };
  const base: string[] = [];

  beforeAll(async () => {
    // TRUST_PROXY: each test's clients come from an address of their own (X-Forwarded-For).
    h = await startHarness({
      RATE_LIMIT_MAX: String(MAX),
      RATE_LIMIT_AUTH_MAX: String(AUTH_MAX),
      RATE_LIMIT_WINDOW_SECONDS: '60',
      TRUST_PROXY: 'loopback',
      LOCAL_PROVIDER_LATENCY_MS: '1500',
    });
    const db = testDb(h.config);
    const connection = await Connection.connect({ address: testStack().temporalAddress });
    const app = await buildApp({
      config: h.config,
      db,
      temporal: new Client({ connection, namespace: h.config.TEMPORAL_NAMESPACE }),
      storage: createStorage(h.config),
      assetSigningKey: Buffer.alloc(32, 7),
    });
    second = { app, db, connection };
    for (const a of [h.app, app]) {
      await a.listen({ port: 0, host: '127.0.0.1' });
      base.push(`http://127.0.0.1:${(a.server.address() as AddressInfo).port}`);
    }
    await waitFor(async () => h.app.credentials.cached && app.credentials.cached, Boolean);
  });
  afterAll(async () => {
    await second?.app.close();
    await second?.connection.close();
    await second?.db.end();
    await h?.stop();
  });

  /** A request to replica `r` (0 or 1) from client address `from`. */
  async function call(
    r: number,
    path: string,
    opts: { from: string; headers?: Record<string, string>; method?: string; body?: unknown },
  ): Promise<Answer> {
    const res = await fetch(`${base[r]}${path}`, {
      method: opts.method ?? 'GET',
      headers: {
        'x-forwarded-for': opts.from,
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...opts.headers,
      },
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  }
  let addresses = 0;
  const address = () => `198.51.100.${++addresses}`;

  it('rate limit: RATE_LIMIT_MAX requests split across both replicas pass, the next one on either gets 429', async () => {
    const user = await createUser(h.db);
    const from = address();
    const remaining: string[] = [];
    for (let i = 0; i < MAX; i++) {
      const res = await call(i % 2, '/v1/me', { from, headers: user.auth });
      expect(res.status).toBe(200);
      remaining.push(res.headers.get('x-ratelimit-remaining')!);
    }
    // One count: each replica's answer continues the other's.
    expect(remaining).toEqual(Array.from({ length: MAX }, (_, i) => String(MAX - 1 - i)));
    for (const r of [0, 1]) {
      const limited = await call(r, '/v1/me', { from, headers: user.auth });
      expect(limited.status).toBe(429);
      expect(limited.headers.get('content-type')).toContain('application/problem+json');
      expect(limited.body.code).toBe('rate_limited');
      const retryAfter = Number(limited.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
  });

  it('rate limit: concurrent requests on both replicas together get exactly RATE_LIMIT_MAX through', async () => {
    const user = await createUser(h.db);
    const from = address();
    const answers = await Promise.all(
      Array.from({ length: 3 * MAX }, (_, i) => call(i % 2, '/v1/me', { from, headers: user.auth })),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(MAX);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2 * MAX);
  });

  it('rate limit: RATE_LIMIT_AUTH_MAX failed credentials from one address across both replicas, then 429 on either, even for a good key', async () => {
    const from = address();
    const user = await createUser(h.db);
    const statuses: number[] = [];
    for (let i = 0; i < AUTH_MAX + 2; i++) {
      const res = await call(i % 2, '/v1/me', {
        from,
        headers: { authorization: `Bearer vk_${'B'.repeat(40)}${i}` },
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([...Array<number>(AUTH_MAX).fill(401), 429, 429]);
    for (const r of [0, 1]) {
      const good = await call(r, '/v1/me', { from, headers: user.auth });
      expect(good.status).toBe(429);
      expect(good.body.code).toBe('rate_limited');
      expect(Number(good.headers.get('retry-after'))).toBeGreaterThan(0);
      // The same key from another address is fine.
      expect((await call(r, '/v1/me', { from: address(), headers: user.auth })).status).toBe(200);
    }
  });

  it('idempotency: the same Idempotency-Key and body on replica 1 then replica 2 answers the first generation, charged once', async () => {
    const user = await createUser(h.db, 1000);
    const from = address();
    const submit = (r: number, key: string) =>
      call(r, '/v1/generations', {
        from,
        method: 'POST',
        headers: { ...user.auth, 'idempotency-key': key },
        body: { model: 'imagen4-ultra', input: { prompt: 'one harbour, two replicas' } },
      });
    const key = randomUUID();
    const first = await submit(0, key);
    expect(first.status).toBe(202);
    const again = await submit(1, key);
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(first.body.id);

    // Concurrent duplicates split across the replicas: one generation too.
    const other = randomUUID();
    const racing = await Promise.all([0, 1, 0, 1].map((r) => submit(r, other)));
    expect(racing.map((a) => a.status)).toEqual([202, 202, 202, 202]);
    const ids = new Set(racing.map((a) => a.body.id as string));
    expect(ids.size).toBe(1);

    const generations = await h.systemDb.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM generations WHERE user_id = $1',
      [user.userId],
    );
    expect(generations.rows[0]!.n).toBe(2);
    const reserves = await h.systemDb.query<{ generation_id: string; n: number }>(
      `SELECT generation_id, count(*)::int AS n FROM credit_transfers
       WHERE generation_id = ANY ($1) AND kind = 'reserve' GROUP BY generation_id`,
      [[first.body.id, ...ids]],
    );
    expect(reserves.rows.map((r) => r.n)).toEqual([1, 1]);
    const credits = await call(1, '/v1/credits', { from, headers: user.auth });
    expect(credits.body.available).toBe(1000 - 2 * 45);
  });

  it('events: a stream opened on replica 2 for a generation submitted on replica 1 ends with its terminal event; replica 2 serves its output', async () => {
    const user = await createUser(h.db, 100);
    const from = address();
    const submitted = await call(0, '/v1/generations', {
      from,
      method: 'POST',
      headers: user.auth,
      body: { model: 'imagen4-ultra', input: { prompt: 'streamed elsewhere' } },
    });
    expect(submitted.status).toBe(202);
    const id = submitted.body.id as string;

    const res = await fetch(`${base[1]}/v1/generations/${id}/events`, {
      headers: { ...user.auth, 'x-forwarded-for': from },
      signal: AbortSignal.timeout(30_000),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = (await res.text())
      .split('\n\n')
      .map(parseEvent)
      .filter((e): e is SseEvent => e !== undefined);
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('status');
    // Opened before the generation finished: the stream saw it run, not only its end.
    expect((events[0]!.data as { status: string }).status).not.toBe('succeeded');
    expect(names[names.length - 1]).toBe('done');
    const done = events[events.length - 1]!.data as { status: string; outputs: { url: string }[] };
    expect(done.status).toBe('succeeded');
    expect(done.outputs).toHaveLength(1);

    // The signed output URL replica 2 handed out is served by replica 1 too (one signing key).
    const output = new URL(done.outputs[0]!.url);
    const asset = await fetch(`${base[0]}${output.pathname}${output.search}`, {
      signal: AbortSignal.timeout(10_000),
    });
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/^image\//);
  });

  // Not "at once" across replicas: replica 1 answers its DELETE once its own feed has the
  // revocation; replica 2 evicts when Postgres's notification reaches it, a moment later. Until
  // then replica 2 may still answer from its cache (the README says so).
  it('credentials: a key revoked through replica 1 is refused by replica 2 within the notification delay', async () => {
    const delays: number[] = [];
    for (let round = 0; round < 5; round++) {
      const user: User = await createUser(h.db);
      const from = address();
      // Both replicas have the key cached.
      for (const r of [0, 1])
        expect((await call(r, '/v1/me', { from, headers: user.auth })).status).toBe(200);
      const keys = await call(1, '/v1/api-keys', { from, headers: user.auth });
      const keyId = (keys.body.data as { id: string }[])[0]!.id;
      const revoked = await call(0, `/v1/api-keys/${keyId}`, { from, method: 'DELETE', headers: user.auth });
      expect(revoked.status).toBe(204);
      // Replica 1 itself: the very next request.
      expect((await call(0, '/v1/me', { from, headers: user.auth })).status).toBe(401);
      const started = Date.now();
      for (;;) {
        const { status } = await call(1, '/v1/me', { from, headers: user.auth });
        if (status === 401) break;
        expect(status).toBe(200);
        expect(Date.now() - started, `round ${round}: still served after`).toBeLessThan(1000);
        await new Promise((r) => setTimeout(r, 2));
      }
      delays.push(Date.now() - started);
    }
    if (process.env.VELRO_TEST_REPORT)
      console.log(`replica 2 refused the revoked key after ${delays.join(', ')} ms`);
  });

  it('credentials: a login token from replica 1 works on replica 2', async () => {
    const email = `replica-${randomUUID()}@test.velro`;
    const password = 'correct horse battery staple';
    const from = address();
    const registered = await call(0, '/v1/auth/register', {
      from,
      method: 'POST',
      body: { email, password },
    });
    expect(registered.status).toBe(201);
    const me = await call(1, '/v1/me', {
      from,
      headers: { authorization: `Bearer ${registered.body.token as string}` },
    });
    expect(me.status).toBe(200);
    expect(me.body.email).toBe(email);
  });
});
