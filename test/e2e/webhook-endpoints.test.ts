// Registering webhook endpoints and reading the signing secrets, through HTTP (no worker needed).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_WEBHOOK_ENDPOINTS } from '../../lib/webhooks/endpoints-store';
import { createUser, startApi, type ApiHarness } from '../support/context';

type Auth = { authorization: string };

describe('webhook endpoints and secrets', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi({ WEBHOOK_SECRET_OVERLAP_SECONDS: '3600' });
  });
  afterAll(() => api?.stop());

  const register = (auth: Auth, payload: unknown) =>
    api.app.inject({
      method: 'POST',
      url: '/v1/webhook-endpoints',
      headers: auth,
      payload: payload as object,
    });

  it('registers an endpoint, shows its secret once, lists, gets and deletes it', async () => {
    const user = await createUser(api.db);
    const created = await register(user.auth, {
      url: 'http://127.0.0.1:9/hooks',
      events: ['generation.succeeded', 'generation.failed'],
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const endpoint = created.json();
    expect(endpoint).toMatchObject({
      url: 'http://127.0.0.1:9/hooks',
      events: ['generation.succeeded', 'generation.failed'],
      status: 'enabled',
      disabledReason: null,
      previousSecretExpiresAt: null,
    });
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(created.headers.location).toBe(`/v1/webhook-endpoints/${endpoint.id}`);

    const all = await register(user.auth, { url: 'http://127.0.0.1:9/all' });
    expect(all.statusCode).toBe(201);
    expect(all.json().events).toBeNull();
    expect(all.json().secret).not.toBe(endpoint.secret);

    const list = (await api.app.inject({ url: '/v1/webhook-endpoints', headers: user.auth })).json();
    expect(list.data.map((e: { id: string }) => e.id)).toEqual([all.json().id, endpoint.id]);
    expect(list.nextCursor).toBeNull();
    for (const e of list.data) expect(e).not.toHaveProperty('secret');

    const one = await api.app.inject({ url: `/v1/webhook-endpoints/${endpoint.id}`, headers: user.auth });
    expect(one.statusCode).toBe(200);
    expect(one.json()).not.toHaveProperty('secret');

    const del = await api.app.inject({
      method: 'DELETE',
      url: `/v1/webhook-endpoints/${endpoint.id}`,
      headers: user.auth,
    });
    expect(del.statusCode).toBe(204);
    const again = await api.app.inject({
      method: 'DELETE',
      url: `/v1/webhook-endpoints/${endpoint.id}`,
      headers: user.auth,
    });
    expect(again.statusCode).toBe(404);
    expect(
      (await api.app.inject({ url: `/v1/webhook-endpoints/${endpoint.id}`, headers: user.auth })).statusCode,
    ).toBe(404);
    const after = (await api.app.inject({ url: '/v1/webhook-endpoints', headers: user.auth })).json();
    expect(after.data.map((e: { id: string }) => e.id)).toEqual([all.json().id]);
  });

  it('pages the list like the other lists', async () => {
    const user = await createUser(api.db);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.unshift((await register(user.auth, { url: `http://127.0.0.1:9/p${i}` })).json().id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await api.app.inject({
        url: `/v1/webhook-endpoints?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: user.auth,
      });
      expect(res.statusCode).toBe(200);
      const page: { data: { id: string }[]; nextCursor: string | null } = res.json();
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids);
    const bad = await api.app.inject({ url: '/v1/webhook-endpoints?cursor=nope', headers: user.auth });
    expect(bad.statusCode).toBe(400);
  });

  it('keeps each account to its own endpoints', async () => {
    const alice = await createUser(api.db);
    const bob = await createUser(api.db);
    const endpoint = (await register(alice.auth, { url: 'http://127.0.0.1:9/alice' })).json();
    for (const [method, url] of [
      ['GET', `/v1/webhook-endpoints/${endpoint.id}`],
      ['DELETE', `/v1/webhook-endpoints/${endpoint.id}`],
      ['POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`],
      ['GET', `/v1/webhook-endpoints/${endpoint.id}/deliveries`],
    ] as const) {
      const res = await api.app.inject({ method, url, headers: bob.auth });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().code).toBe('not_found');
    }
    expect((await api.app.inject({ url: '/v1/webhook-endpoints', headers: bob.auth })).json().data).toEqual(
      [],
    );
    // Still there for Alice.
    expect(
      (await api.app.inject({ url: `/v1/webhook-endpoints/${endpoint.id}`, headers: alice.auth })).statusCode,
    ).toBe(200);
    // Every route needs a caller.
    expect((await api.app.inject({ url: '/v1/webhook-endpoints' })).statusCode).toBe(401);
    expect((await api.app.inject({ url: '/v1/webhooks/secret' })).statusCode).toBe(401);
  });

  it('refuses bad input with a 400 naming the field, creating nothing', async () => {
    const user = await createUser(api.db);
    for (const payload of [
      {},
      { url: 'not a url' },
      { url: 'ftp://127.0.0.1/x' },
      { url: 'http://127.0.0.1/x', events: [] },
      { url: 'http://127.0.0.1/x', events: ['generation.exploded'] },
      { url: 'http://127.0.0.1/x', events: ['generation.failed', 'generation.failed'] },
      { url: 'http://127.0.0.1/x', extra: true },
      { url: `http://127.0.0.1/${'x'.repeat(2100)}` },
    ]) {
      const res = await register(user.auth, payload);
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
    }
    expect((await api.app.inject({ url: '/v1/webhook-endpoints', headers: user.auth })).json().data).toEqual(
      [],
    );
  });

  it(`allows ${MAX_WEBHOOK_ENDPOINTS} endpoints per account (409 past that)`, async () => {
    const user = await createUser(api.db);
    await Promise.all(
      Array.from({ length: MAX_WEBHOOK_ENDPOINTS }, (_, i) =>
        register(user.auth, { url: `http://127.0.0.1:9/${i}` }),
      ),
    );
    const over = await register(user.auth, { url: 'http://127.0.0.1:9/over' });
    expect(over.statusCode).toBe(409);
    expect(over.json().code).toBe('too_many_webhook_endpoints');
  });

  it('creates the account secret on first read, keeps it, and rotates it with an overlap', async () => {
    const user = await createUser(api.db);
    const first = await api.app.inject({ url: '/v1/webhooks/secret', headers: user.auth });
    expect(first.statusCode).toBe(200);
    expect(first.headers['cache-control']).toBe('no-store');
    const secret = first.json();
    expect(secret).toMatchObject({ previousSecretExpiresAt: null, rotatedAt: null });
    expect(secret.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect((await api.app.inject({ url: '/v1/webhooks/secret', headers: user.auth })).json()).toEqual(secret);

    const other = await createUser(api.db);
    expect(
      (await api.app.inject({ url: '/v1/webhooks/secret', headers: other.auth })).json().secret,
    ).not.toBe(secret.secret);

    const before = Date.now();
    const rotated = await api.app.inject({
      method: 'POST',
      url: '/v1/webhooks/secret/rotate',
      headers: user.auth,
    });
    expect(rotated.statusCode).toBe(200);
    const next = rotated.json();
    expect(next.secret).not.toBe(secret.secret);
    expect(next.rotatedAt).not.toBeNull();
    const overlapEnds = Date.parse(next.previousSecretExpiresAt);
    expect(overlapEnds).toBeGreaterThanOrEqual(before + 3600_000 - 5000);
    expect(overlapEnds).toBeLessThanOrEqual(Date.now() + 3600_000 + 5000);
    expect((await api.app.inject({ url: '/v1/webhooks/secret', headers: user.auth })).json().secret).toBe(
      next.secret,
    );
  });

  it("rotates an endpoint's secret, returning the new one", async () => {
    const user = await createUser(api.db);
    const endpoint = (await register(user.auth, { url: 'http://127.0.0.1:9/rotate' })).json();
    const res = await api.app.inject({
      method: 'POST',
      url: `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`,
      headers: user.auth,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: endpoint.id, status: 'enabled' });
    expect(res.json().secret).toMatch(/^whsec_/);
    expect(res.json().secret).not.toBe(endpoint.secret);
    expect(Date.parse(res.json().previousSecretExpiresAt)).toBeGreaterThan(Date.now() + 3500_000);
  });
});

describe('webhook URLs in production', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi({
      NODE_ENV: 'production',
      JWT_SECRET: randomBytes(32).toString('base64'),
      // The strict defaults: testConfig turns these on for local receivers.
      WEBHOOK_ALLOW_PRIVATE_URLS: 'false',
      WEBHOOK_ALLOW_HTTP: 'false',
    });
  });
  afterAll(() => api?.stop());

  it.each([
    'http://hooks.example.com/velro',
    'https://127.0.0.1/hook',
    'https://[::1]/hook',
    'https://169.254.169.254/latest/meta-data',
    'https://10.0.0.8/hook',
    'https://192.168.1.20/hook',
    'https://[fd00::1]/hook',
    'https://224.0.0.1/hook',
    'https://0.0.0.0/hook',
    'https://localhost/hook',
  ])('refuses to register %s with 400 invalid_webhook_url', async (url) => {
    const user = await createUser(api.db);
    const res = await api.app.inject({
      method: 'POST',
      url: '/v1/webhook-endpoints',
      headers: user.auth,
      payload: { url },
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ status: 400, code: 'invalid_webhook_url' });
    expect((await api.app.inject({ url: '/v1/webhook-endpoints', headers: user.auth })).json().data).toEqual(
      [],
    );
  });

  it('accepts https on a public address', async () => {
    const user = await createUser(api.db);
    const res = await api.app.inject({
      method: 'POST',
      url: '/v1/webhook-endpoints',
      headers: user.auth,
      payload: { url: 'https://93.184.215.14/hook' },
    });
    expect(res.statusCode).toBe(201);
  });

  it('refuses a generation whose webhookUrl points inside the network, before anything is charged', async () => {
    const user = await createUser(api.db, 100);
    for (const webhookUrl of [
      'https://10.1.2.3/hook',
      'http://hooks.example.com/velro',
      'https://[::ffff:127.0.0.1]/',
    ]) {
      const res = await api.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: user.auth,
        payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: 'a lighthouse' }, webhookUrl },
      });
      expect(res.statusCode, webhookUrl).toBe(400);
      expect(res.json()).toMatchObject({ code: 'invalid_webhook_url' });
      expect(res.json().detail).toMatch(/^webhookUrl: /);
    }
    expect((await api.app.inject({ url: '/v1/generations', headers: user.auth })).json().data).toEqual([]);
    expect((await api.app.inject({ url: '/v1/credits', headers: user.auth })).json()).toEqual({
      available: 100,
      reserved: 0,
      spent: 0,
    });
  });
});
