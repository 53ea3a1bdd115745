import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../support/context';

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

describe('the OpenAPI document', () => {
  let api: ApiHarness;
  let doc: { openapi: string; paths: Record<string, Record<string, Operation>> };
  beforeAll(async () => {
    api = await startApi();
    const res = await api.app.inject({ url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    doc = res.json();
  });
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

  it('serves the interactive docs', async () => {
    const res = await api.app.inject({ url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/html');
  });
});
