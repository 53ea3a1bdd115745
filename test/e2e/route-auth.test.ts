import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signJwt } from '../../lib/auth/jwt';
import { startApi, type ApiHarness } from '../support/context';

/** The routes anyone may call: health, docs, login and register (and the service banner/metrics). */
const PUBLIC = [
  /^(GET|HEAD) \/$/,
  /^(GET|HEAD) \/health$/,
  /^(GET|HEAD) \/ready$/,
  /^(GET|HEAD) \/metrics$/,
  /^(GET|HEAD) \/openapi\.json$/,
  /^(GET|HEAD) \/docs(\/.*)?$/,
  /^POST \/v1\/auth\/(login|register)$/,
];
/** Not for users at all: authenticated by the provider's own signature (see the provider tests). */
const PROVIDER_SIGNED = /^POST \/v1\/provider-webhooks\/:provider$/;

describe('every route but health, docs, login and register needs credentials', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    // Each refused request below is a failed credential: keep the per-address limit out of the way.
    api = await startApi({ RATE_LIMIT_AUTH_MAX: '100000' });
  });
  afterAll(() => api?.stop());

  const concrete = (url: string) =>
    url
      .replace(/:(\w+)/g, (_, name: string) => (name === 'provider' ? 'fal' : randomUUID()))
      .replace(/\*$/, 'x');

  it('answers 401 unauthorized (problem+json) to each of them without credentials or with bad ones', async () => {
    const routes = api.app.routeTable.filter((r) => r.method !== 'OPTIONS');
    expect(routes.length).toBeGreaterThan(20);
    const badCredentials = [
      undefined,
      'Bearer',
      'Basic dXNlcjpwYXNz',
      `Bearer vk_${'x'.repeat(43)}`,
      'Bearer not-a-token',
      `Bearer ${signJwt(Buffer.alloc(32, 3), { sub: randomUUID(), role: 'admin' }, 600).token}`,
    ];
    const guarded: string[] = [];
    for (const route of routes) {
      const name = `${route.method} ${route.url}`;
      if (PUBLIC.some((p) => p.test(name))) continue;
      if (PROVIDER_SIGNED.test(name)) {
        for (const provider of ['fal', 'replicate', 'local', 'x']) {
          const res = await api.app.inject({
            method: 'POST',
            url: `/v1/provider-webhooks/${provider}`,
            payload: {},
          });
          expect([401, 404], `${name} unsigned`).toContain(res.statusCode);
          expect(res.headers['content-type']).toContain('application/problem+json');
        }
        continue;
      }
      guarded.push(name);
      for (const authorization of badCredentials) {
        const res = await api.app.inject({
          method: route.method as 'GET',
          url: concrete(route.url),
          headers: authorization ? { authorization } : {},
          ...(['POST', 'PATCH', 'PUT'].includes(route.method) ? { payload: {} } : {}),
        });
        expect(res.statusCode, `${name} with ${authorization ?? 'nothing'}`).toBe(401);
        if (route.method !== 'HEAD') {
          expect(res.headers['content-type'], name).toContain('application/problem+json');
          expect(res.json().code, name).toBe('unauthorized');
        }
      }
    }
    // The list is not vacuous: the core of the API is in it.
    for (const name of [
      'GET /v1/me',
      'POST /v1/generations',
      'GET /v1/generations/:id',
      'POST /v1/api-keys',
      'DELETE /v1/api-keys/:id',
      'GET /v1/projects',
      'PATCH /v1/projects/:id',
      'GET /v1/credits/transactions',
      'POST /v1/admin/credit-grants',
      'GET /v1/assets/:id',
    ]) {
      expect(guarded).toContain(name);
    }
  });

  it('documents login and register as needing no credentials, and the rest as bearer-protected', async () => {
    const doc = (await api.app.inject({ url: '/openapi.json' })).json();
    expect(doc.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths['/v1/auth/login'].post.security).toEqual([]);
    expect(doc.paths['/v1/auth/register'].post.security).toEqual([]);
    expect(doc.paths['/v1/me'].get.security).toBeUndefined();
  });

  it('lets the public routes through without credentials', async () => {
    for (const url of ['/', '/health', '/openapi.json', '/docs/', '/metrics']) {
      expect((await api.app.inject({ url })).statusCode, url).toBe(200);
    }
    const login = await api.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email: `nobody-${randomUUID()}@test.velro`, password: 'whatever it is' },
    });
    expect(login.json().code).toBe('invalid_credentials');
  });
});
