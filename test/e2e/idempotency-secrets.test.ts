// Idempotency-Key on the routes whose answer carries a one-time secret (a new API key, an endpoint's
// signing secret): retries create one thing, and the secret is never kept for replays.
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import fp from 'fastify-plugin';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import errors from '../../api/plugins/errors';
import idempotency, { withoutSecrets } from '../../api/plugins/idempotency';
import { MAX_ACTIVE_API_KEYS } from '../../lib/api-keys/store';
import { generateApiKey } from '../../lib/auth/api-keys';
import { withSystemTx, withUserTx } from '../../lib/db/pool';
import { createUser, startApi, type ApiHarness, systemDb } from '../support/context';

type Auth = Record<string, string>;

interface SecretRoute {
  url: string;
  /** The answer's field holding the one-time secret. */
  field: string;
  secret: RegExp;
  /** Rows of what the route creates, as the user sees them. */
  table: string;
  body(n: string): Record<string, unknown>;
}

const ROUTES: SecretRoute[] = [
  {
    url: '/v1/api-keys',
    field: 'key',
    secret: /^vk_/,
    table: 'api_keys',
    body: (n) => ({ name: `key ${n}` }),
  },
  {
    url: '/v1/webhook-endpoints',
    field: 'secret',
    secret: /^whsec_/,
    table: 'webhook_endpoints',
    body: (n) => ({ url: `http://127.0.0.1:9/hooks/${n}`, events: ['generation.succeeded'] }),
  },
];

describe.each(ROUTES)('Idempotency-Key on POST $url', (route) => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(() => api?.stop());

  const create = (auth: Auth, key: string | undefined, body: Record<string, unknown>) =>
    api.app.inject({
      method: 'POST',
      url: route.url,
      headers: { ...auth, ...(key !== undefined ? { 'idempotency-key': key } : {}) },
      payload: body,
    });

  const rows = async (userId: string) =>
    (
      await withUserTx(api.db, userId, (tx) =>
        tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${route.table}`),
      )
    ).rows[0]!.n;

  const stored = async (userId: string, key: string) =>
    (
      await withUserTx(api.db, userId, (tx) =>
        tx.query<{ response_status: number | null; response_body: string | null }>(
          'SELECT response_status, response_body FROM idempotency_keys WHERE key = $1',
          [key],
        ),
      )
    ).rows[0];

  /** Idempotency records, of any user, whose kept answer holds `text`. */
  const keptAnywhere = async (text: string) =>
    (
      await withSystemTx(systemDb(), (tx) =>
        tx.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM idempotency_keys WHERE strpos(coalesce(response_body, ''), $1) > 0",
          [text],
        ),
      )
    ).rows[0]!.n;

  it('shows the secret once: a replay has the same status and id, the secret null, and it was never stored', async () => {
    const user = await createUser(api.db);
    const before = await rows(user.userId);
    const key = randomUUID();
    const body = route.body(randomUUID());

    const first = await create(user.auth, key, body);
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const created = first.json();
    const secret = created[route.field] as string;
    expect(secret).toMatch(route.secret);

    const again = await create(user.auth, key, body);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers['idempotent-secret-redacted']).toBe('true');
    expect(again.json()).toEqual({ ...created, [route.field]: null });
    expect(again.body).not.toContain(secret);

    const kept = await stored(user.userId, key);
    expect(kept?.response_status).toBe(201);
    expect(kept?.response_body).not.toContain(secret);
    expect(JSON.parse(kept!.response_body!)).toEqual({ ...created, [route.field]: null });
    expect(await keptAnywhere(secret)).toBe(0);
    expect(await rows(user.userId)).toBe(before + 1);
  });

  it('refuses the key with another body (422 idempotency_mismatch), creating nothing', async () => {
    const user = await createUser(api.db);
    const key = randomUUID();
    expect((await create(user.auth, key, route.body('first'))).statusCode).toBe(201);
    const count = await rows(user.userId);
    const other = await create(user.auth, key, route.body('second'));
    expect(other.statusCode).toBe(422);
    expect(other.headers['content-type']).toContain('application/problem+json');
    expect(other.json()).toMatchObject({ code: 'idempotency_mismatch' });
    expect(await rows(user.userId)).toBe(count);
  });

  it('creates exactly one from 10 concurrent duplicates; the others wait (409) or get the replay', async () => {
    const user = await createUser(api.db);
    const before = await rows(user.userId);
    const key = randomUUID();
    const body = route.body('at once');
    const answers = await Promise.all(Array.from({ length: 10 }, () => create(user.auth, key, body)));

    for (const a of answers) expect([201, 409]).toContain(a.statusCode);
    const busy = answers.filter((a) => a.statusCode === 409);
    for (const a of busy) {
      expect(a.json().code).toBe('idempotency_in_progress');
      expect(a.headers['retry-after']).toBe('1');
    }
    const done = answers.filter((a) => a.statusCode === 201);
    const original = done.filter((a) => !a.headers['idempotent-replayed']);
    expect(original).toHaveLength(1);
    const secret = original[0]!.json()[route.field] as string;
    expect(secret).toMatch(route.secret);
    for (const a of done) expect(a.json().id).toBe(original[0]!.json().id);
    for (const a of done.filter((d) => d !== original[0])) expect(a.json()[route.field]).toBeNull();
    expect(await rows(user.userId)).toBe(before + 1);

    // Once the first is done, any retry is a replay of it.
    const retry = await create(user.auth, key, body);
    expect(retry.statusCode).toBe(201);
    expect(retry.json()).toEqual({ ...original[0]!.json(), [route.field]: null });
    expect(await keptAnywhere(secret)).toBe(0);
  });

  it('keeps the first answer when a request with another body races it', async () => {
    // The loser's 422 must not be stored as the answer of the winner, still running.
    const user = await createUser(api.db);
    const before = await rows(user.userId);
    for (let round = 0; round < 5; round++) {
      const key = randomUUID();
      const bodies = [route.body(`a${round}`), route.body(`b${round}`)];
      const answers = await Promise.all(bodies.map((b) => create(user.auth, key, b)));
      expect(answers.map((a) => a.statusCode).sort()).toEqual([201, 422]);
      const winner = answers.findIndex((a) => a.statusCode === 201);
      const replay = await create(user.auth, key, bodies[winner]!);
      expect(replay.statusCode).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
      expect(replay.json().id).toBe(answers[winner]!.json().id);
    }
    expect(await rows(user.userId)).toBe(before + 5);
  });

  it('rejects keys longer than 255 characters (400), creating nothing', async () => {
    const user = await createUser(api.db);
    const before = await rows(user.userId);
    const long = await create(user.auth, 'k'.repeat(256), route.body('long key'));
    expect(long.statusCode).toBe(400);
    expect(long.json().code).toBe('invalid_request');
    const empty = await create(user.auth, '', route.body('empty key'));
    expect(empty.statusCode).toBe(400);
    expect(await rows(user.userId)).toBe(before);
    expect((await create(user.auth, 'k'.repeat(255), route.body('longest key'))).statusCode).toBe(201);
  });
});

describe('Idempotency-Key on POST /v1/api-keys, the key itself', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(() => api?.stop());

  const createKey = (auth: Auth, key: string, name: string) =>
    api.app.inject({
      method: 'POST',
      url: '/v1/api-keys',
      headers: { ...auth, 'idempotency-key': key },
      payload: { name },
    });

  it('authenticates with the key from the first answer; a client that lost it revokes it by the replayed id', async () => {
    const user = await createUser(api.db);
    const key = randomUUID();
    const first = (await createKey(user.auth, key, 'ci')).json();
    const me = await api.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${first.key}` } });
    expect(me.statusCode).toBe(200);
    expect(me.json().id).toBe(user.userId);

    const replay = (await createKey(user.auth, key, 'ci')).json();
    expect(replay).toMatchObject({ id: first.id, prefix: first.prefix, key: null });
    const revoked = await api.app.inject({
      method: 'DELETE',
      url: `/v1/api-keys/${replay.id}`,
      headers: user.auth,
    });
    expect(revoked.statusCode).toBe(204);
    const after = await api.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${first.key}` } });
    expect(after.statusCode).toBe(401);
  });

  it('replays a 4xx first answer (409 too_many_api_keys) as is, without creating anything', async () => {
    const user = await createUser(api.db);
    await withSystemTx(systemDb(), async (tx) => {
      for (let i = 1; i < MAX_ACTIVE_API_KEYS; i++) {
        const k = generateApiKey();
        await tx.query('SELECT create_api_key($1, $2, $3, $4)', [
          user.userId,
          `filler ${i}`,
          k.prefix,
          k.hash,
        ]);
      }
    });
    const key = randomUUID();
    const first = await createKey(user.auth, key, 'one too many');
    expect(first.statusCode).toBe(409);
    expect(first.json().code).toBe('too_many_api_keys');
    const again = await createKey(user.auth, key, 'one too many');
    expect(again.statusCode).toBe(409);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers['idempotent-secret-redacted']).toBeUndefined();
    expect(again.headers['content-type']).toContain('application/problem+json');
    expect(again.json()).toEqual(first.json());
    const { rows } = await withUserTx(api.db, user.userId, (tx) =>
      tx.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys'),
    );
    expect(rows[0]!.n).toBe(MAX_ACTIVE_API_KEYS);
  });
});

describe('the idempotency plugin on a route with a one-time secret', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(() => api?.stop());

  /** The plugin alone, on a route that fails with a 500 the first time. */
  async function miniApp(userId: string) {
    const app = Fastify();
    app.decorate('db', api.db);
    await app.register(errors);
    await app.register(
      fp(
        async (a) => {
          a.decorateRequest('caller', null);
          a.addHook('onRequest', async (req) => {
            req.caller = { id: userId, role: 'user', apiKeyId: null, teamId: null };
          });
        },
        { name: 'auth' },
      ),
    );
    await app.register(idempotency);
    let runs = 0;
    app.post(
      '/things',
      { config: { idempotent: 'exclusive', idempotentSecretFields: ['secret', 'alsoSecret'] } },
      async (_req, reply) => {
        runs += 1;
        if (runs === 1) throw new Error('the database went away');
        return reply.status(201).send({ id: runs, secret: `s3cret-${runs}`, alsoSecret: 'x', name: 'n' });
      },
    );
    return { app, runs: () => runs };
  }

  it('keeps no 5xx: the retry runs again, and only its answer, without the secrets, is replayed', async () => {
    const user = await createUser(api.db);
    const { app, runs } = await miniApp(user.userId);
    try {
      const key = randomUUID();
      const send = () =>
        app.inject({
          method: 'POST',
          url: '/things',
          headers: { 'idempotency-key': key },
          payload: { a: 1 },
        });
      expect((await send()).statusCode).toBe(500);
      const { rows } = await withUserTx(api.db, user.userId, (tx) =>
        tx.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key]),
      );
      expect(rows).toHaveLength(0);

      const second = await send();
      expect(second.statusCode).toBe(201);
      expect(second.json()).toEqual({ id: 2, secret: 's3cret-2', alsoSecret: 'x', name: 'n' });
      const third = await send();
      expect(third.statusCode).toBe(201);
      expect(third.headers['idempotent-secret-redacted']).toBe('true');
      expect(third.json()).toEqual({ id: 2, secret: null, alsoSecret: null, name: 'n' });
      expect(runs()).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('refuses secret fields on a route that is not idempotent, and idempotent GETs', async () => {
    const app = Fastify();
    app.decorate('db', api.db);
    await app.register(fp(async () => {}, { name: 'auth' }));
    await app.register(idempotency);
    expect(() =>
      app.post('/oops', { config: { idempotentSecretFields: ['secret'] } }, async () => ({})),
    ).toThrow(/idempotentSecretFields needs idempotent/);
    expect(() => app.get('/reads', { config: { idempotent: 'exclusive' } }, async () => ({}))).toThrow(
      /only a request that changes something/,
    );
    await app.close();
  });

  it('withholds the fields of a JSON object only, and never keeps a body it cannot read', () => {
    expect(withoutSecrets('{"id":1,"secret":"s"}', ['secret'])).toEqual({
      body: '{"id":1,"secret":null}',
      redacted: true,
    });
    expect(withoutSecrets('{"id":1}', ['secret'])).toEqual({ body: '{"id":1}', redacted: false });
    expect(withoutSecrets('[{"secret":"s"}]', ['secret'])).toEqual({
      body: '[{"secret":"s"}]',
      redacted: false,
    });
    expect(withoutSecrets('vk_not json', ['secret'])).toEqual({ body: null, redacted: false });
    expect(withoutSecrets('vk_not json', [])).toEqual({ body: 'vk_not json', redacted: false });
  });
});
