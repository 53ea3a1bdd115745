import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CredentialCache } from '../../lib/auth/credential-cache';
import { RevocationFeed } from '../../lib/auth/revocation-feed';
import { createUser, startApi, systemDb, testStack, waitFor, type ApiHarness } from '../support/context';

type User = Awaited<ReturnType<typeof createUser>>;

/**
 * The API caches who a credential is, and revocations still apply at once: this process's own at
 * the very next request, anyone else's (SQL, another replica, `npm run admin`) as soon as the
 * database's notification arrives; while the notifications cannot arrive, nothing is cached.
 */
describe('credential cache: fast authentication, immediate revocation', () => {
  let h: ApiHarness;
  let owner: pg.Client;
  beforeAll(async () => {
    h = await startApi();
    owner = new pg.Client({ connectionString: testStack().databaseUrl });
    await owner.connect();
    await waitFor(async () => h.app.credentials.cached, Boolean);
  });
  afterAll(async () => {
    await owner?.end();
    await h?.stop();
  });

  const me = (auth: Record<string, string>) => h.app.inject({ url: '/v1/me', headers: auth });
  /** The caller's role as authentication resolved it: 403 for a user, 400 (the empty body) for an admin. */
  const grantAs = async (auth: Record<string, string>) => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/admin/credit-grants',
      headers: auth,
      payload: {},
    });
    return res.statusCode === 403 ? 'user' : res.statusCode === 400 ? 'admin' : `status ${res.statusCode}`;
  };
  const keyIdOf = async (user: User) =>
    (await h.systemDb.query<{ id: string }>('SELECT id FROM api_keys WHERE user_id = $1', [user.userId]))
      .rows[0]!.id;
  /** A change the notification triggers do not see, made by the owner: only the TTL would evict it. */
  const unnotified = async (...statements: [string, unknown[]][]) => {
    await owner.query('BEGIN');
    try {
      await owner.query('ALTER TABLE api_keys DISABLE TRIGGER api_keys_auth_changed');
      await owner.query('ALTER TABLE users DISABLE TRIGGER users_auth_changed');
      for (const [sql, params] of statements) await owner.query(sql, params);
      await owner.query('ALTER TABLE api_keys ENABLE TRIGGER api_keys_auth_changed');
      await owner.query('ALTER TABLE users ENABLE TRIGGER users_auth_changed');
      await owner.query('COMMIT');
    } catch (err) {
      await owner.query('ROLLBACK');
      throw err;
    }
  };

  it('answers a known key from the cache (a change no notification tells of is not seen)', async () => {
    const user = await createUser(h.db);
    expect(await grantAs(user.auth)).toBe('user');
    await unnotified(
      ['UPDATE api_keys SET revoked_at = now() WHERE user_id = $1', [user.userId]],
      ["UPDATE users SET role = 'admin' WHERE id = $1", [user.userId]],
    );
    expect((await me(user.auth)).statusCode).toBe(200);
    expect(await grantAs(user.auth)).toBe('user');
  });

  it('refuses a key revoked through the API on the very next request', async () => {
    const user = await createUser(h.db);
    for (let i = 0; i < 3; i++) expect((await me(user.auth)).statusCode).toBe(200);
    const revoke = await h.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${await keyIdOf(user)}`,
      headers: user.auth,
    });
    expect(revoke.statusCode).toBe(204);
    expect((await me(user.auth)).statusCode).toBe(401);
  });

  it('refuses a key revoked in SQL by another connection within a moment', async () => {
    const user = await createUser(h.db);
    expect((await me(user.auth)).statusCode).toBe(200);
    expect((await me(user.auth)).statusCode).toBe(200);
    await h.systemDb.query('UPDATE api_keys SET revoked_at = now() WHERE user_id = $1', [user.userId]);
    const started = Date.now();
    await waitFor(
      async () => (await me(user.auth)).statusCode,
      (s) => s === 401,
      2000,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("applies a role change and a deleted key's owner to keys and login tokens alike", async () => {
    const user = await createUser(h.db);
    const token = h.app.issueToken({ id: user.userId, role: 'user' }).token;
    const bearer = { authorization: `Bearer ${token}` };
    expect(await grantAs(user.auth)).toBe('user');
    expect(await grantAs(bearer)).toBe('user');
    await h.systemDb.query("UPDATE users SET role = 'admin' WHERE id = $1", [user.userId]);
    await waitFor(
      async () => grantAs(user.auth),
      (r) => r === 'admin',
      2000,
    );
    await waitFor(
      async () => grantAs(bearer),
      (r) => r === 'admin',
      2000,
    );
    await owner.query('DELETE FROM api_keys WHERE user_id = $1', [user.userId]);
    await waitFor(
      async () => (await me(user.auth)).statusCode,
      (s) => s === 401,
      2000,
    );
  });

  it('records a key’s last use without a write per request: written before a list shows it', async () => {
    const user = await createUser(h.db);
    const lastUsed = async () =>
      (await h.systemDb.query('SELECT last_used_at FROM api_keys WHERE user_id = $1', [user.userId])).rows[0]!
        .last_used_at as Date | null;
    const before = Date.now();
    for (let i = 0; i < 5; i++) expect((await me(user.auth)).statusCode).toBe(200);
    expect(await lastUsed()).toBeNull();
    const list = await h.app.inject({ url: '/v1/api-keys', headers: user.auth });
    expect(Date.parse(list.json().data[0].lastUsedAt)).toBeGreaterThanOrEqual(before - 1000);
    expect((await lastUsed())!.getTime()).toBeGreaterThanOrEqual(before - 1000);
  });
});

describe('last use: written when the API closes', () => {
  it('writes the uses noted since the last flush on close', async () => {
    const h = await startApi();
    const user = await createUser(h.db);
    try {
      expect((await h.app.inject({ url: '/v1/me', headers: user.auth })).statusCode).toBe(200);
    } finally {
      await h.stop();
    }
    const { rows } = await systemDb().query('SELECT last_used_at FROM api_keys WHERE user_id = $1', [
      user.userId,
    ]);
    expect(rows[0].last_used_at).toBeInstanceOf(Date);
  });
});

describe('the revocation feed: while it is down, nothing is cached', () => {
  const name = `velro-feed-test-${randomUUID()}`;
  const cache = new CredentialCache({ maxEntries: 10, ttlMs: 60_000 });
  let feed: RevocationFeed;
  let system: pg.Client;
  let owner: pg.Client;
  const warnings: object[] = [];
  beforeAll(async () => {
    const stack = testStack();
    system = new pg.Client({ connectionString: stack.systemDatabaseUrl });
    await system.connect();
    owner = new pg.Client({ connectionString: stack.databaseUrl });
    await owner.connect();
    feed = new RevocationFeed({
      connect: () => new pg.Client({ connectionString: stack.appDatabaseUrl, application_name: name }),
      cache,
      log: { warn: (details) => warnings.push(details) },
      maxBackoffMs: 300,
    });
    feed.start();
    await waitFor(async () => cache.isLive, Boolean);
  });
  afterAll(async () => {
    await feed?.close();
    await system?.end();
    await owner?.end();
  });

  const entry = { userId: randomUUID(), role: 'user' as const, apiKeyId: randomUUID(), teamId: null };

  it('bypasses the cache from the moment its connection is cut, and starts empty when back', async () => {
    cache.set(cache.begin(), 'key:a', entry);
    expect(cache.get('key:a')).toEqual(entry);
    // A read that began before the cut must not fill the cache after it.
    const stale = cache.begin();

    const { rows } = await owner.query(
      'SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = $1',
      [name],
    );
    expect(rows).toEqual([{ done: true }]);
    await waitFor(async () => !cache.isLive, Boolean, 2000);
    expect(cache.get('key:a')).toBeUndefined();
    cache.set(cache.begin(), 'key:b', entry);
    expect(cache.get('key:b')).toBeUndefined();

    await waitFor(async () => cache.isLive, Boolean, 5000);
    expect(cache.size).toBe(0);
    cache.set(stale, 'key:c', entry);
    expect(cache.get('key:c')).toBeUndefined();
    expect(warnings.length).toBeGreaterThan(0);
  });

  it('evicts on the notifications of a transaction committed elsewhere, before its next answer', async () => {
    cache.set(cache.begin(), 'key:a', entry);
    const other = { ...entry, apiKeyId: randomUUID(), userId: randomUUID() };
    cache.set(cache.begin(), 'key:other', other);
    await system.query(`SELECT pg_notify('velro_auth', $1)`, [`key:${entry.apiKeyId}`]);
    await feed.barrier();
    expect(cache.get('key:a')).toBeUndefined();
    expect(cache.get('key:other')).toEqual(other);
    await system.query(`SELECT pg_notify('velro_auth', $1)`, [`user:${other.userId}`]);
    await feed.barrier();
    expect(cache.get('key:other')).toBeUndefined();
  });
});
