import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwtKey, signJwt } from '../../lib/auth/jwt';
import { setUserRole } from '../../lib/users/store';
import { withSystemTx, withUserTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { runAdmin as admin } from '../support/scripts';
import {
  createUser,
  startApi,
  startHarness,
  systemDb,
  waitFor,
  type ApiHarness,
  type Harness,
} from '../support/context';

const PASSWORD = 'correct horse battery staple';
const newEmail = () => `acct-${randomUUID()}@test.velro`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Lets a test file register and fail logins freely: limits have tests of their own. */
const GENEROUS_LIMITS = { RATE_LIMIT_AUTH_MAX: '10000', RATE_LIMIT_MAX: '10000' };

async function register(h: ApiHarness, email = newEmail(), password = PASSWORD) {
  const res = await h.app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password } });
  expect(res.statusCode, res.body).toBe(201);
  return res.json() as {
    token: string;
    expiresAt: string;
    user: { id: string; email: string; role: string };
  };
}

describe('accounts: register and log in', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi(GENEROUS_LIMITS);
  });
  afterAll(() => h?.stop());

  it('registers with a normalised email and answers {token, user}; the token works at once', async () => {
    const email = newEmail();
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/auth/register',
      payload: { email: `  ${email.toUpperCase()} `, password: PASSWORD },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toMatchObject({ tokenType: 'Bearer', user: { email, role: 'user' } });
    expect(body.token.split('.')).toHaveLength(3);
    const ttl = Date.parse(body.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(3500_000);
    expect(ttl).toBeLessThanOrEqual(3600_000);

    const me = await h.app.inject({ url: '/v1/me', headers: bearer(body.token) });
    expect(me.statusCode).toBe(200);
    // The credit account came with the user; sign-up credits are 0 by default.
    expect(me.json()).toMatchObject({ id: body.user.id, email, role: 'user', credits: { available: 0 } });
  });

  it('stores only a scrypt hash of the password', async () => {
    const { user } = await register(h);
    const stored = await withSystemTx(systemDb(), (tx) =>
      tx.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [user.id]),
    );
    const hash = stored.rows[0]!.password_hash;
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(hash).not.toContain(PASSWORD);
  });

  it('refuses a taken email, whatever its case, with 409 email_taken', async () => {
    const email = newEmail();
    await register(h, email);
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/auth/register',
      payload: { email: email.toUpperCase(), password: 'another password entirely' },
    });
    expect(res.statusCode).toBe(409);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ status: 409, code: 'email_taken' });
  });

  it('enforces 10 to 200 characters with 400 weak_password naming the field', async () => {
    for (const password of ['x'.repeat(9), 'x'.repeat(201), '']) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/v1/auth/register',
        payload: { email: newEmail(), password },
      });
      expect(res.statusCode, password).toBe(400);
      expect(res.json()).toMatchObject({
        code: 'weak_password',
        errors: [{ path: 'body.password', message: expect.stringContaining('10 to 200') }],
      });
    }
    await register(h, newEmail(), 'x'.repeat(10));
    await register(h, newEmail(), 'y'.repeat(200));
  });

  it('answers 400 invalid_request naming the field for a bad email or body', async () => {
    const long = `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(60)}.velro`;
    expect(long.length).toBeGreaterThan(254);
    const cases: [unknown, string][] = [
      [{ email: 'not-an-email', password: PASSWORD }, 'body.email'],
      [{ email: long, password: PASSWORD }, 'body.email'],
      [{ email: 42, password: PASSWORD }, 'body.email'],
      [{ email: newEmail() }, 'body.password'],
      [{ email: newEmail(), password: PASSWORD, role: 'admin' }, 'role'],
      [[], 'body'],
    ];
    for (const [payload, field] of cases) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/v1/auth/register',
        payload: payload as object,
      });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
      expect(res.json().detail).toContain(field);
    }
  });

  it('logs in with the password, case-insensitively on the email', async () => {
    const email = newEmail();
    const { user } = await register(h, email);
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: email.toUpperCase(), password: PASSWORD },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ tokenType: 'Bearer', user: { id: user.id, email } });
    const me = await h.app.inject({ url: '/v1/me', headers: bearer(res.json().token) });
    expect(me.json().id).toBe(user.id);
  });

  it('answers the same 401 to a wrong password, an unknown email and an account without a password', async () => {
    const email = newEmail();
    await register(h, email);
    const keyOnly = await createUser(h.db); // created without a password (API keys only)
    const attempts = [
      { email, password: `${PASSWORD}!` },
      { email: newEmail(), password: PASSWORD },
      { email: keyOnly.email, password: PASSWORD },
    ];
    const bodies = [];
    for (const payload of attempts) {
      const res = await h.app.inject({ method: 'POST', url: '/v1/auth/login', payload });
      expect(res.statusCode).toBe(401);
      expect(res.headers['content-type']).toContain('application/problem+json');
      const { requestId: _, ...body } = res.json();
      bodies.push(body);
    }
    expect(bodies[1]).toEqual(bodies[0]);
    expect(bodies[2]).toEqual(bodies[0]);
    expect(bodies[0]).toMatchObject({ status: 401, code: 'invalid_credentials' });
  });

  it('takes about as long for an unknown email as for a wrong password (a dummy hash runs)', async () => {
    const email = newEmail();
    await register(h, email);
    const time = async (payload: object) => {
      const t = performance.now();
      const res = await h.app.inject({ method: 'POST', url: '/v1/auth/login', payload });
      expect(res.statusCode).toBe(401);
      return performance.now() - t;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const wrong: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      wrong.push(await time({ email, password: 'wrong password here' }));
      unknown.push(await time({ email: newEmail(), password: 'wrong password here' }));
    }
    // Without the dummy hash an unknown email would answer in ~1 ms against ~50+ ms.
    expect(median(unknown)).toBeGreaterThan(median(wrong) / 3);
  });

  it('refuses expired, foreign-key, tampered and alg-none tokens with 401', async () => {
    const { token, user } = await register(h);
    const key = await jwtKey(h.config);
    const expired = signJwt(key, { sub: user.id, role: 'user' }, 60, Date.now() - 120_000).token;
    const foreign = signJwt(Buffer.alloc(32, 9), { sub: user.id, role: 'user' }, 60).token;
    const [head, payload, sig] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const elevated = Buffer.from(JSON.stringify({ ...claims, role: 'admin' })).toString('base64url');
    const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    for (const bad of [
      expired,
      foreign,
      `${head}.${elevated}.${sig}`,
      `${none}.${payload}.`,
      `${token}x`,
      'vk_short',
    ]) {
      const res = await h.app.inject({ url: '/v1/me', headers: bearer(bad) });
      expect(res.statusCode, bad).toBe(401);
      expect(res.json().code).toBe('unauthorized');
      expect(res.headers['www-authenticate']).toContain('Bearer');
    }
    const expiredRes = await h.app.inject({ url: '/v1/me', headers: bearer(expired) });
    expect(expiredRes.json().detail).toContain('expired');
  });

  it('upgrades an old, weaker password hash on the next good login', async () => {
    const email = newEmail();
    const { user } = await register(h, email);
    // N = 2^14 as an older release might have stored it.
    const { scryptSync, randomBytes } = await import('node:crypto');
    const salt = randomBytes(16);
    const old = `scrypt$16384$8$1$${salt.toString('base64url')}$${scryptSync(PASSWORD, salt, 32, { N: 16384 }).toString('base64url')}`;
    await withSystemTx(systemDb(), (tx) =>
      tx.query('UPDATE users SET password_hash = $2 WHERE id = $1', [user.id, old]),
    );
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email, password: PASSWORD },
    });
    expect(res.statusCode).toBe(200);
    const { rows } = await withSystemTx(systemDb(), (tx) =>
      tx.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [user.id]),
    );
    expect(rows[0]!.password_hash).toMatch(/^scrypt\$32768\$/);
  });

  it('reads the role from the database, so a promotion applies to a token already issued', async () => {
    const email = newEmail();
    const { token } = await register(h, email);
    const grant = () =>
      h.app.inject({
        method: 'POST',
        url: '/v1/admin/credit-grants',
        headers: bearer(token),
        payload: { userId: randomUUID(), credits: 1, reason: 'x' },
      });
    expect((await grant()).statusCode).toBe(403);
    expect(await setUserRole(systemDb(), email.toUpperCase(), 'admin')).toMatchObject({
      role: 'admin',
      previousRole: 'user',
    });
    expect((await h.app.inject({ url: '/v1/me', headers: bearer(token) })).json().role).toBe('admin');
    expect((await grant()).statusCode).toBe(404); // allowed now; that user does not exist
    await setUserRole(systemDb(), email, 'user');
    expect((await grant()).statusCode).toBe(403);
    expect(await setUserRole(systemDb(), newEmail(), 'admin')).toBeUndefined();
  });
});

describe('accounts: sign-up credits', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi({ ...GENEROUS_LIMITS, SIGNUP_CREDITS: '25', JWT_TTL_SECONDS: '120' });
  });
  afterAll(() => h?.stop());

  it('grants SIGNUP_CREDITS through the ledger, as one grant transfer, and honours JWT_TTL_SECONDS', async () => {
    const { token, expiresAt } = await register(h);
    expect(Date.parse(expiresAt) - Date.now()).toBeLessThanOrEqual(120_000);
    expect((await h.app.inject({ url: '/v1/credits', headers: bearer(token) })).json()).toEqual({
      available: 25,
      reserved: 0,
      spent: 0,
    });
    const history = (await h.app.inject({ url: '/v1/credits/transactions', headers: bearer(token) })).json();
    expect(history.data).toEqual([
      expect.objectContaining({ kind: 'grant', amount: 25, reason: 'sign-up credits' }),
    ]);
  });
});

describe('API keys', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi(GENEROUS_LIMITS);
  });
  afterAll(() => h?.stop());

  const create = (auth: Record<string, string>, name = 'ci') =>
    h.app.inject({ method: 'POST', url: '/v1/api-keys', headers: auth, payload: { name } });

  it('shows a new key once, stores only its hash, and the key works', async () => {
    const { token, user } = await register(h);
    const res = await create(bearer(token), 'laptop');
    expect(res.statusCode).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const created = res.json();
    expect(created).toMatchObject({ name: 'laptop', lastUsedAt: null });
    expect(created.key).toMatch(/^vk_[A-Za-z0-9_-]{43}$/);
    expect(created.prefix).toBe(created.key.slice(0, 10));

    const stored = await withSystemTx(systemDb(), (tx) =>
      tx.query('SELECT * FROM api_keys WHERE id = $1', [created.id]).then((r) => r.rows[0]),
    );
    expect(stored.key_hash).toEqual(createHash('sha256').update(created.key).digest());
    expect(JSON.stringify(stored)).not.toContain(created.key.slice(10));

    const me = await h.app.inject({ url: '/v1/me', headers: bearer(created.key) });
    expect(me.json().id).toBe(user.id);
    // Keys work for managing keys too.
    expect((await create(bearer(created.key), 'from a key')).statusCode).toBe(201);
  });

  it('lists id, name, prefix, createdAt and lastUsedAt (never the key), newest first, with cursor pages', async () => {
    const { token } = await register(h);
    const keys = [];
    for (const name of ['one', 'two', 'three']) keys.push((await create(bearer(token), name)).json());
    await h.app.inject({ url: '/v1/me', headers: bearer(keys[0].key) });

    const first = await h.app.inject({ url: '/v1/api-keys?limit=2', headers: bearer(token) });
    expect(first.statusCode).toBe(200);
    const page1 = first.json();
    expect(page1.data.map((k: { name: string }) => k.name)).toEqual(['three', 'two']);
    expect(Object.keys(page1.data[0]).sort()).toEqual(['createdAt', 'id', 'lastUsedAt', 'name', 'prefix']);
    expect(page1.nextCursor).toEqual(expect.any(String));
    const page2 = (
      await h.app.inject({ url: `/v1/api-keys?limit=2&cursor=${page1.nextCursor}`, headers: bearer(token) })
    ).json();
    expect(page2.data.map((k: { name: string }) => k.name)).toEqual(['one']);
    expect(page2.data[0].lastUsedAt).toEqual(expect.any(String));
    expect(page2.nextCursor).toBeNull();
    expect(JSON.stringify([page1, page2])).not.toContain(keys[0].key);

    for (const q of ['limit=0', 'limit=101', 'limit=abc', 'cursor=garbage']) {
      const res = await h.app.inject({ url: `/v1/api-keys?${q}`, headers: bearer(token) });
      expect(res.statusCode, q).toBe(400);
      expect(res.json().code).toBe('invalid_request');
    }
  });

  it('revokes at once with DELETE: 204, then the key gets 401 and is no longer listed', async () => {
    const { token } = await register(h);
    const key = (await create(bearer(token))).json();
    expect((await h.app.inject({ url: '/v1/me', headers: bearer(key.key) })).statusCode).toBe(200);
    const del = await h.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${key.id}`,
      headers: bearer(token),
    });
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    const after = await h.app.inject({ url: '/v1/me', headers: bearer(key.key) });
    expect(after.statusCode).toBe(401);
    expect(after.json().detail).toContain('revoked');
    expect((await h.app.inject({ url: '/v1/api-keys', headers: bearer(token) })).json().data).toEqual([]);
    const again = await h.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${key.id}`,
      headers: bearer(token),
    });
    expect(again.statusCode).toBe(404);
  });

  it('answers 400 for a bad name and 409 past the cap of active keys', async () => {
    const { token } = await register(h);
    for (const payload of [
      {},
      { name: '' },
      { name: '   ' },
      { name: 'x'.repeat(101) },
      { name: 'ok', extra: 1 },
    ]) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/v1/api-keys',
        headers: bearer(token),
        payload,
      });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
    }
    const { user } = await register(h);
    await withSystemTx(systemDb(), async (tx) => {
      for (let i = 0; i < 100; i++) {
        await tx.query(
          `INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, 'bulk', 'vk_bulk', $2)`,
          [user.id, createHash('sha256').update(`${user.id}:${i}`).digest()],
        );
      }
    });
    const login = await h.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: user.email, password: PASSWORD },
    });
    const res = await create(bearer(login.json().token));
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('too_many_api_keys');
  });
});

describe('projects', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ ...GENEROUS_LIMITS, LOCAL_PROVIDER_LATENCY_MS: '200' });
  });
  afterAll(() => h?.stop());

  it('creates, reads, lists, renames and deletes a project', async () => {
    const user = await createUser(h.db);
    const create = (name: string) =>
      h.app.inject({ method: 'POST', url: '/v1/projects', headers: user.auth, payload: { name } });
    const res = await create('  Launch campaign ');
    expect(res.statusCode).toBe(201);
    const project = res.json();
    expect(project).toMatchObject({ name: 'Launch campaign' });
    expect(res.headers.location).toBe(`/v1/projects/${project.id}`);
    expect((await h.app.inject({ url: `/v1/projects/${project.id}`, headers: user.auth })).json()).toEqual(
      project,
    );

    await create('second');
    await create('third');
    const page1 = (await h.app.inject({ url: '/v1/projects?limit=2', headers: user.auth })).json();
    expect(page1.data.map((p: { name: string }) => p.name)).toEqual(['third', 'second']);
    const page2 = (
      await h.app.inject({ url: `/v1/projects?limit=2&cursor=${page1.nextCursor}`, headers: user.auth })
    ).json();
    expect(page2).toEqual({ data: [project], nextCursor: null });

    const renamed = await h.app.inject({
      method: 'PATCH',
      url: `/v1/projects/${project.id}`,
      headers: user.auth,
      payload: { name: 'Renamed' },
    });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json()).toMatchObject({ id: project.id, name: 'Renamed', createdAt: project.createdAt });
    expect(Date.parse(renamed.json().updatedAt)).toBeGreaterThanOrEqual(Date.parse(project.updatedAt));

    for (const payload of [
      {},
      { name: '' },
      { name: 'x'.repeat(101) },
      { name: 'a', userId: randomUUID() },
    ]) {
      const bad = await h.app.inject({
        method: 'PATCH',
        url: `/v1/projects/${project.id}`,
        headers: user.auth,
        payload,
      });
      expect(bad.statusCode, JSON.stringify(payload)).toBe(400);
    }
    const del = await h.app.inject({
      method: 'DELETE',
      url: `/v1/projects/${project.id}`,
      headers: user.auth,
    });
    expect(del.statusCode).toBe(204);
    for (const method of ['GET', 'DELETE'] as const) {
      const gone = await h.app.inject({ method, url: `/v1/projects/${project.id}`, headers: user.auth });
      expect(gone.statusCode).toBe(404);
      expect(gone.json().code).toBe('not_found');
    }
    expect((await h.app.inject({ url: '/v1/projects/not-a-uuid', headers: user.auth })).statusCode).toBe(400);
  });

  it('pages through projects made within one millisecond without skipping any (cursors carry milliseconds)', async () => {
    const user = await createUser(h.db);
    const names = ['a', 'b', 'c', 'd'];
    for (const name of names) {
      await h.app.inject({ method: 'POST', url: '/v1/projects', headers: user.auth, payload: { name } });
    }
    // The same millisecond, microseconds apart, in creation order: d is the newest.
    await withSystemTx(systemDb(), (tx) =>
      tx.query(
        `UPDATE projects SET created_at = '2026-06-01T12:00:00.123Z'::timestamptz
           + make_interval(secs => (array_position($2::text[], name)) / 1000000.0)
         WHERE user_id = $1`,
        [user.userId, names],
      ),
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: { name: string }[]; nextCursor: string | null } = (
        await h.app.inject({
          url: `/v1/projects?limit=1${cursor ? `&cursor=${cursor}` : ''}`,
          headers: user.auth,
        })
      ).json();
      seen.push(...page.data.map((p) => p.name));
      cursor = page.nextCursor;
    } while (cursor && seen.length < 10);
    expect(seen).toEqual(['d', 'c', 'b', 'a']);
  });

  it('keeps the generations of a deleted project, with their outputs and ledger history', async () => {
    const user = await createUser(h.db, 200);
    const project = (
      await h.app.inject({ method: 'POST', url: '/v1/projects', headers: user.auth, payload: { name: 'p' } })
    ).json();
    const submit = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: user.auth,
      payload: { model: 'imagen4-ultra', input: { prompt: 'kept after deletion' }, projectId: project.id },
    });
    expect(submit.statusCode).toBe(202);
    const generation = submit.json();
    expect(generation.projectId).toBe(project.id);
    const done = await waitFor(
      async () =>
        (await h.app.inject({ url: `/v1/generations/${generation.id}`, headers: user.auth })).json(),
      (g) => g.status === 'succeeded',
    );
    const filtered = (
      await h.app.inject({ url: `/v1/generations?projectId=${project.id}`, headers: user.auth })
    ).json();
    expect(filtered.data.map((g: { id: string }) => g.id)).toEqual([generation.id]);

    // Deleted by the app role, through row-level security.
    expect(
      (await h.app.inject({ method: 'DELETE', url: `/v1/projects/${project.id}`, headers: user.auth }))
        .statusCode,
    ).toBe(204);
    const after = (
      await h.app.inject({ url: `/v1/generations/${generation.id}`, headers: user.auth })
    ).json();
    expect(after).toMatchObject({
      id: generation.id,
      status: 'succeeded',
      projectId: null,
      credits: done.credits,
    });
    expect(after.outputs).toHaveLength(1);
    expect(
      (await h.app.inject({ url: `/v1/generations?projectId=${project.id}`, headers: user.auth })).json()
        .data,
    ).toEqual([]);
    const transfers = await withUserTx(h.db, user.userId, (tx) =>
      tx.query('SELECT kind FROM credit_transfers WHERE generation_id = $1 ORDER BY created_at', [
        generation.id,
      ]),
    );
    expect(transfers.rows.map((r) => r.kind)).toEqual(['reserve', 'commit']);
    expect(await withUserTx(h.db, user.userId, (tx) => ledger.balance(tx, user.userId))).toMatchObject({
      available: 155,
      spent: 45,
    });
  });

  it("refuses a generation in another user's project with 404, even past the API (composite foreign key)", async () => {
    const owner = await createUser(h.db);
    const other = await createUser(h.db, 100);
    const project = (
      await h.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: owner.auth,
        payload: { name: 'mine' },
      })
    ).json();
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: other.auth,
      payload: { model: 'imagen4-ultra', input: { prompt: 'x' }, projectId: project.id },
    });
    expect(res.statusCode).toBe(404);
    // The database refuses it even if the API check were skipped.
    await expect(
      withSystemTx(systemDb(), (tx) =>
        tx.query(
          `INSERT INTO generations (id, user_id, project_id, model, input, credits, provider)
           VALUES ($1, $2, $3, 'imagen4-ultra', '{}', 45, 'local')`,
          [randomUUID(), other.userId, project.id],
        ),
      ),
    ).rejects.toMatchObject({ code: '23503' });
  });
});

describe('npm run admin -- promote', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi(GENEROUS_LIMITS);
  });
  afterAll(() => h?.stop());

  it('makes the user with that email an admin (and demote undoes it)', async () => {
    const email = newEmail();
    const { token } = await register(h, email);
    const out = await admin(['promote', '--email', email.toUpperCase()]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`${email} is now admin (was user)`);
    expect((await h.app.inject({ url: '/v1/me', headers: bearer(token) })).json().role).toBe('admin');

    const back = await admin(['demote', '--email', email]);
    expect(back.code).toBe(0);
    expect((await h.app.inject({ url: '/v1/me', headers: bearer(token) })).json().role).toBe('user');

    const unknown = await admin(['promote', '--email', newEmail()]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no user with email');
    const usage = await admin(['promote']);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toContain('--email is required');
  });
});
