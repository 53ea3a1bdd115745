import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../api/app';
import { BODY_LIMIT, MAX_PARAM_LENGTH, MAX_URL_LENGTH } from '../../api/limits';
import { encodeCursor } from '../../api/schemas/common';
import { WEBHOOK_BODY_LIMIT } from '../../api/routes/provider-webhooks';
import { createStorage } from '../../lib/wiring/from-config';
import { createUser, startApi, type ApiHarness } from '../support/context';

interface MediaType {
  schema: { examples?: unknown[]; $ref?: string };
  example?: unknown;
  examples?: unknown;
}

interface Operation {
  summary?: string;
  tags?: string[];
  responses?: Record<string, unknown>;
}

interface Parameter {
  name: string;
  in: string;
  schema: { type?: string; format?: string; pattern?: string; minLength?: number; maxLength?: number };
}

interface FullOperation {
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
  responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }>; headers?: object }>;
}

/** A route's URL with its parameters filled: a UUID, or `value`. */
const concrete = (url: string, value?: string) =>
  url.replace(
    /:(\w+)/g,
    (_, name: string) => value ?? (name === 'provider' ? `nobody-${randomUUID()}` : randomUUID()),
  );

/** Error statuses whose body is not a problem: GET /ready's 503 is its readiness report. */
const OWN_ERROR_BODIES = new Set(['GET /ready 503']);

describe('the OpenAPI document', () => {
  let api: ApiHarness;
  let doc: {
    openapi: string;
    paths: Record<string, Record<string, Operation>>;
    security?: Record<string, string[]>[];
  };
  let auth: { authorization: string };
  // The checks below send a few hundred requests, refused ones among them: no rate limit in the way.
  beforeAll(async () => {
    api = await startApi({ RATE_LIMIT_MAX: '1000000', RATE_LIMIT_AUTH_MAX: '1000000' });
    const res = await api.app.inject({ url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    doc = res.json();
    auth = (await createUser(api.db)).auth;
  });

  /** The documented routes: every route in the table but HEAD, the docs UI and hidden ones. */
  const documented = () =>
    api.app.routeTable
      .filter((r) => !r.hidden && r.method !== 'HEAD' && !r.url.startsWith('/docs'))
      .map((r) => ({
        ...r,
        op: doc.paths[r.url.replace(/:(\w+)/g, '{$1}')]?.[r.method.toLowerCase()] as unknown as FullOperation,
      }));
  afterAll(() => api?.stop());

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    // The validator is an ES module.
    const { Validator } = await import('@seriousme/openapi-schema-validator');
    const result = await new Validator().validate(doc as never);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('documents every route, with a summary, a tag and its error responses', () => {
    const routes = api.app.routeTable.filter(
      (r) => !r.hidden && r.method !== 'HEAD' && !r.url.startsWith('/docs'),
    );
    expect(routes.length).toBeGreaterThan(10);
    for (const route of routes) {
      const path = route.url.replace(/:(\w+)/g, '{$1}');
      const op = doc.paths[path]?.[route.method.toLowerCase()];
      expect(op, `${route.method} ${route.url} is missing from /openapi.json`).toBeDefined();
      expect(op!.summary, `${route.method} ${route.url} has no summary`).toBeTruthy();
      expect(op!.tags?.length, `${route.method} ${route.url} has no tag`).toBeGreaterThan(0);
      const codes = Object.keys(op!.responses ?? {});
      const isPublicInfo = ['/', '/health', '/ready'].includes(route.url);
      if (!isPublicInfo) {
        expect(
          codes.some((c) => c.startsWith('4')),
          `${route.method} ${route.url} documents no error`,
        ).toBe(true);
      }
    }
  });

  it('gives an example for every schema component and every request body', () => {
    const components = (
      doc as unknown as { components: { schemas: Record<string, { examples?: unknown[] }> } }
    ).components.schemas;
    const named = Object.entries(components).filter(([name]) => !name.endsWith('Input'));
    expect(named.length).toBeGreaterThan(5);
    for (const [name, schema] of named) {
      expect(schema.examples?.length, `component ${name} has no example`).toBeGreaterThan(0);
    }
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const body = (op as { requestBody?: { content: Record<string, MediaType> } }).requestBody;
        if (!body) continue;
        const media = Object.values(body.content)[0]!;
        const ref = media.schema.$ref?.split('/').pop();
        const withExample =
          media.example !== undefined ||
          media.examples !== undefined ||
          media.schema.examples?.length ||
          (ref && components[ref]?.examples?.length);
        expect(
          withExample,
          `${method.toUpperCase()} ${path} has a request body without an example`,
        ).toBeTruthy();
      }
    }
  });

  it('documents every error as application/problem+json with the Problem schema, and successes with their own type', () => {
    let errors = 0;
    for (const { method, url, op } of documented()) {
      for (const [status, response] of Object.entries(op.responses)) {
        const name = `${method} ${url} ${status}`;
        const types = Object.keys(response.content ?? {});
        if (Number(status) < 400) {
          expect(types, name).not.toContain('application/problem+json');
          continue;
        }
        if (OWN_ERROR_BODIES.has(name)) continue;
        errors++;
        expect(types, name).toEqual(['application/problem+json']);
        expect(response.content!['application/problem+json']!.schema.$ref, name).toBe(
          '#/components/schemas/Problem',
        );
      }
    }
    expect(errors).toBeGreaterThan(200);
    const events = doc.paths['/v1/generations/{id}/events']!.get as unknown as FullOperation;
    expect(Object.keys(events.responses['200']!.content!)).toEqual(['text/event-stream']);
    const asset = doc.paths['/v1/assets/{id}']!.get as unknown as FullOperation;
    expect(Object.keys(asset.responses['200']!.content!)).toEqual(['image/*', 'video/*']);
  });

  it('marks exactly the public routes `security: []`, and answers the others 401 without credentials', async () => {
    const schemes = Object.keys(
      (doc as unknown as { components: { securitySchemes: Record<string, { scheme: string }> } }).components
        .securitySchemes,
    );
    expect(schemes).toEqual(['apiKey']);
    expect(doc.security).toEqual([{ apiKey: [] }]);
    let open = 0;
    for (const { method, url, op, public: isPublic } of documented()) {
      const name = `${method} ${url}`;
      // Asset and upload content URLs are public when signed: a bad signature is refused with 403, not 401.
      const signed = url === '/v1/assets/:id' || url === '/v1/uploads/:id/content';
      const query = signed ? '?expires=1&signature=bogus' : '';
      const res = await api.app.inject({
        method: method as 'GET',
        url: concrete(url) + query,
        ...(method !== 'GET' && method !== 'DELETE' ? { payload: {} } : {}),
      });
      if (isPublic) {
        open++;
        expect(res.statusCode, `${name} without credentials`).not.toBe(401);
        expect(op.security, name).toEqual([]);
      } else {
        expect(res.statusCode, `${name} without credentials`).toBe(401);
        expect(res.json().code, name).toBe('unauthorized');
        // Inherits the document's requirement (checked above).
        expect(op.security, name).toBeUndefined();
        expect(op.responses['401'], name).toBeDefined();
      }
    }
    // Not vacuous: banner, health, readiness, login, register, provider webhooks, assets.
    expect(open).toBeGreaterThanOrEqual(7);
  });

  it('documents 414 on every route, as answered for a long path segment or URL', async () => {
    for (const { method, url, op } of documented()) {
      const name = `${method} ${url}`;
      expect(op.responses['414'], name).toBeDefined();
      if (url.includes(':')) {
        const long = await api.app.inject({
          method: method as 'GET',
          url: concrete(url, 'a'.repeat(MAX_PARAM_LENGTH + 1)),
          headers: auth,
        });
        expect(long.statusCode, name).toBe(414);
        expect(long.json().code, name).toBe('uri_too_long');
        // A segment of exactly the limit gets to the route (then validation or a lookup answers).
        const atLimit = await api.app.inject({
          method: method as 'GET',
          url: concrete(url, 'a'.repeat(MAX_PARAM_LENGTH)),
          headers: auth,
        });
        expect(atLimit.statusCode, name).not.toBe(414);
      }
      const longUrl = await api.app.inject({
        method: method as 'GET',
        url: `${concrete(url)}?q=${'a'.repeat(MAX_URL_LENGTH)}`,
        headers: auth,
      });
      expect(longUrl.statusCode, `${name} with a long URL`).toBe(414);
    }
  });

  it('documents 413 and 415 wherever a body is taken, as answered', async () => {
    for (const { method, url, op } of documented()) {
      if (method === 'GET') continue;
      const name = `${method} ${url}`;
      const limit = url.startsWith('/v1/provider-webhooks/')
        ? WEBHOOK_BODY_LIMIT
        : url === '/v1/uploads'
          ? api.config.UPLOAD_MAX_BYTES
          : BODY_LIMIT;
      const big = await api.app.inject({
        method: method as 'POST',
        url: concrete(url),
        headers: { ...auth, 'content-type': 'application/json' },
        payload: `"${'x'.repeat(limit)}"`,
      });
      expect(big.statusCode, name).toBe(413);
      expect(op.responses['413'], name).toBeDefined();
      // Fastify parses JSON and plain text; anything else is refused unless the route parses it
      // itself, and a content-type that is not a media type is refused everywhere.
      const refused = [];
      for (const type of ['application/xml', 'garbage']) {
        const res = await api.app.inject({
          method: method as 'POST',
          url: concrete(url),
          headers: { ...auth, 'content-type': type },
          payload: '<hello/>',
        });
        if (res.statusCode === 415) refused.push(type);
      }
      if (refused.length) expect(op.responses['415'], name).toBeDefined();
      else expect(op.responses['415'], `${name} documents a 415 it does not answer`).toBeUndefined();
      expect(op.responses['400'], name).toBeDefined();
    }
  });

  it('documents 422 idempotency_mismatch and 409 idempotency_in_progress on the routes that take Idempotency-Key', () => {
    const idempotent = documented().filter((r) => r.idempotent);
    expect(idempotent.map((r) => `${r.method} ${r.url}`).sort()).toEqual([
      'POST /v1/api-keys',
      'POST /v1/generations',
      'POST /v1/projects',
      'POST /v1/teams/:id/api-keys',
      'POST /v1/teams/:id/invitations',
      'POST /v1/teams/:id/webhook-endpoints',
      'POST /v1/uploads',
      'POST /v1/webhook-endpoints',
    ]);
    for (const { method, url, op } of idempotent) {
      expect(op.responses['422'], `${method} ${url}`).toBeDefined();
      expect(op.responses['409'], `${method} ${url}`).toBeDefined();
      expect(op.parameters?.some((p) => p.in === 'header' && p.name === 'idempotency-key')).toBe(true);
    }
  });

  it('documents 429 (with Retry-After) wherever the rate limit applies, 500 everywhere, 503 where Temporal is asked', () => {
    for (const { method, url, op } of documented()) {
      const name = `${method} ${url}`;
      expect(op.responses['500'], name).toBeDefined();
      if (['/health', '/ready'].includes(url)) expect(op.responses['429'], name).toBeUndefined();
      else expect(op.responses['429']?.headers, name).toHaveProperty('retry-after');
    }
    for (const [path, method] of [
      ['/v1/generations', 'post'],
      ['/v1/provider-webhooks/{provider}', 'post'],
      ['/ready', 'get'],
    ] as const) {
      expect((doc.paths[path]![method] as unknown as FullOperation).responses['503'], path).toBeDefined();
    }
  });

  it('carries the constraints the server enforces: UUID ids, path lengths, the cursor, the email', async () => {
    for (const { method, url, op } of documented()) {
      for (const p of (op.parameters ?? []).filter((p) => p.in === 'path')) {
        expect(p.schema.maxLength, `${method} ${url} {${p.name}}`).toBeLessThanOrEqual(MAX_PARAM_LENGTH);
        if (p.name === 'id' && url !== '/v1/models/:id') {
          expect(p.schema).toMatchObject({ format: 'uuid', minLength: 36, maxLength: 36 });
          expect(new RegExp(p.schema.pattern!).test(randomUUID())).toBe(true);
        }
      }
    }

    // The cursor: exactly what encodeCursor gives passes the documented pattern; what fails it, the server refuses.
    const list = doc.paths['/v1/projects']!.get as unknown as FullOperation;
    const cursor = list.parameters!.find((p) => p.name === 'cursor')!.schema;
    const pattern = new RegExp(cursor.pattern!);
    const issued = encodeCursor(new Date(), randomUUID());
    expect(pattern.test(issued)).toBe(true);
    expect(issued.length).toBe(cursor.maxLength);
    for (const bad of ['garbage', issued.slice(1), `${issued}A`, `${issued.slice(0, -2)}+/`, '']) {
      expect(pattern.test(bad), bad).toBe(false);
      if (!bad) continue;
      const res = await api.app.inject({
        url: `/v1/projects?cursor=${encodeURIComponent(bad)}`,
        headers: auth,
      });
      expect(res.statusCode, bad).toBe(400);
    }
    const first = await api.app.inject({ url: `/v1/projects?cursor=${issued}`, headers: auth });
    expect(first.statusCode).toBe(200);

    // The email of register and login: the documented pattern agrees with the server on each sample.
    for (const path of ['/v1/auth/register', '/v1/auth/login']) {
      const body = (doc.paths[path]!.post as unknown as FullOperation).requestBody!.content[
        'application/json'
      ]!;
      const email = (body.schema as { properties: Record<string, Parameter['schema']> }).properties.email!;
      expect(email).toMatchObject({ format: 'email', maxLength: 254, pattern: z.regexes.email.source });
    }
    const emailPattern = new RegExp(z.regexes.email.source);
    const samples = [
      'ann@example.com',
      'ann.lee+tag@mail.example.co',
      "o'brien@example.org",
      'ann@example',
      'ann@@example.com',
      '.ann@example.com',
      'ann..lee@example.com',
      'ann@-example.com',
      'ann@exa_mple.com',
      'ann example@example.com',
      `${'a'.repeat(64)}@${'b'.repeat(180)}.com`,
      `${'a'.repeat(64)}@${'b'.repeat(200)}.com`,
    ];
    for (const sample of samples) {
      // A too-short password: a valid email gets to the password check (400 weak_password).
      const res = await api.app.inject({
        method: 'POST',
        url: '/v1/auth/register',
        payload: { email: sample, password: 'x' },
      });
      expect(res.statusCode, sample).toBe(400);
      const documentedOk = emailPattern.test(sample) && sample.length <= 254;
      expect(res.json().code === 'weak_password', sample).toBe(documentedOk);
    }
  });

  it('is the same document from every build of the app', async () => {
    const again = await buildApp({
      config: api.config,
      db: api.db,
      temporal: api.temporal,
      storage: createStorage(api.config),
      assetSigningKey: Buffer.alloc(32, 7),
    });
    try {
      const first = await api.app.inject({ url: '/openapi.json' });
      const second = await again.inject({ url: '/openapi.json' });
      expect(second.statusCode).toBe(200);
      expect(second.body).toBe(first.body);
    } finally {
      await again.close();
    }
  });

  it('serves the interactive docs', async () => {
    const res = await api.app.inject({ url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/html');
  });
});
