import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { VERSION } from '../../lib/version';
import { TITLES } from '../errors';
import { BODY_LIMIT, MAX_PARAM_LENGTH, MAX_URL_LENGTH } from '../limits';
import { problemSchema } from '../schemas/common';
import { UNLIMITED_ROUTES } from './security';

/** Either credential, as `Authorization: Bearer …`: what every route not marked public requires. */
export const BEARER_SECURITY: Record<string, string[]>[] = [{ apiKey: [] }];

/** What the docs need to know of a route that its schema does not say. */
interface RouteFacts {
  /** Its plugin parses any content type itself (provider webhooks: the raw bytes). */
  parsesAnyType: boolean;
}

type TransformInput = Parameters<typeof jsonSchemaTransform>[0];
type Schema = Record<string, unknown> & { response?: Record<string, unknown> };
type JsonResponse = Record<string, unknown>;

const retryAfter = (what: string) => ({
  'retry-after': { type: 'integer', minimum: 0, description: `Seconds to wait before ${what}` },
});

/**
 * The error statuses a route answers whatever its handler does, with the codes behind them: the
 * router (414), the body parser (413, 415), validation (400), authentication (401), idempotency keys
 * (422, 409), rate limits (429) and the error handler (500).
 */
function impliedErrors(route: RouteOptions, schema: Schema, facts: RouteFacts | undefined) {
  const methods = [route.method].flat().map((m) => m.toUpperCase());
  const takesBody = methods.some((m) => m !== 'GET' && m !== 'HEAD');
  const mode = route.config?.idempotent;
  const limit = route.bodyLimit ?? BODY_LIMIT;
  const errors = new Map<number, string>();
  const hasInput = ['params', 'querystring', 'body', 'headers'].some((k) => schema[k] !== undefined);
  if (hasInput || takesBody)
    errors.set(
      400,
      '`invalid_request`: the request does not match this operation; `errors` names each bad field',
    );
  if (!route.config?.public)
    errors.set(401, '`unauthorized`: credentials missing, malformed, unknown, revoked or expired');
  if (takesBody) errors.set(413, `\`payload_too_large\`: the body is over ${limit} bytes`);
  errors.set(
    414,
    `\`uri_too_long\`: a path segment over ${MAX_PARAM_LENGTH} characters, or a URL over ${MAX_URL_LENGTH}`,
  );
  if (takesBody)
    errors.set(
      415,
      facts?.parsesAnyType
        ? '`unsupported_media_type`: a `content-type` that is not a media type'
        : '`unsupported_media_type`: a body that is neither JSON nor plain text',
    );
  if (mode) {
    errors.set(422, '`idempotency_mismatch`: this Idempotency-Key was used with a different request');
    if (mode === 'exclusive')
      errors.set(
        409,
        '`idempotency_in_progress`: a request with this Idempotency-Key is still running (retry after `Retry-After`)',
      );
  }
  if (!UNLIMITED_ROUTES.has(route.url)) {
    errors.set(429, '`rate_limited`: too many requests in the window (retry after `Retry-After`)');
  }
  if (!errors.has(503))
    errors.set(
      503,
      '`unavailable`: the database could not be reached, or the request not counted against its rate limit (retry after `Retry-After`)',
    );
  errors.set(500, '`internal_error`: something failed on our side (details are logged, not sent)');
  return errors;
}

const RESPONSE_HEADERS: Record<number, Record<string, unknown>> = {
  401: { 'www-authenticate': { type: 'string', description: '`Bearer realm="velro"`' } },
  409: retryAfter('retrying, when the code is `idempotency_in_progress`'),
  429: retryAfter('retrying'),
  503: retryAfter('retrying'),
};

/**
 * The zod transform, then what the route's schema leaves implicit: every error status the route
 * answers (those it declares plus `impliedErrors`) as `application/problem+json` with the Problem
 * schema, and `security` from `config.public` (`[]`) or else the bearer schemes.
 */
function transform(facts: Map<string, RouteFacts>) {
  return (input: TransformInput) => {
    const schema = input.schema as Schema | undefined;
    if (!schema || schema.hide) return jsonSchemaTransform(input);
    const route = (input as unknown as { route: RouteOptions }).route;
    const implied = impliedErrors(
      route,
      schema,
      facts.get(`${[route.method].flat().join(',')} ${route.url}`),
    );

    const declared = schema.response ?? {};
    const response: Record<string, unknown> = {};
    // Numeric order, as the statuses would read in a reference: declared and implied together.
    const statuses = [...new Set([...Object.keys(declared).map(Number), ...implied.keys()])].sort(
      (a, b) => a - b,
    );
    for (const status of statuses) response[status] = declared[status] ?? problemSchema;
    const out = jsonSchemaTransform({ ...input, schema: { ...schema, response } } as TransformInput);
    const json = (out.schema as { response: Record<string, JsonResponse> }).response;

    for (const status of statuses) {
      // A route's own body for an error status (the readiness report of GET /ready) stays as it is.
      if (status < 400 || response[status] !== problemSchema) continue;
      const title = TITLES[status] ?? 'Error';
      const detail = implied.get(status);
      json[status] = {
        description: detail ? `${title}: ${detail}` : title,
        content: { 'application/problem+json': { schema: json[status] } },
        ...(RESPONSE_HEADERS[status] ? { headers: RESPONSE_HEADERS[status] } : {}),
      };
    }
    // Public routes opt out; every other one inherits the document's bearer requirement.
    if (route.config?.public) (out.schema as Record<string, unknown>).security = [];
    return out;
  };
}

/** OpenAPI 3.1 generated from the routes' zod schemas: /openapi.json, and interactive docs at /docs. */
export default fp(
  async function docs(app: FastifyInstance) {
    const facts = new Map<string, RouteFacts>();
    app.addHook('onRoute', function (this: FastifyInstance, route) {
      // `this` is the plugin the route is declared in: its content-type parsers apply. One without
      // the JSON parser replaced them with its own (provider webhooks take any type, as raw bytes).
      facts.set(`${[route.method].flat().join(',')} ${route.url}`, {
        parsesAnyType: !this.hasContentTypeParser('application/json'),
      });
    });

    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Velro API',
          version: VERSION,
          description:
            'Submit AI image and video generations and pay for them in credits. ' +
            'Authenticate with `Authorization: Bearer <API key or login token>`. ' +
            'Every error is RFC 9457 `application/problem+json` with a stable `code` and the `requestId` ' +
            '(also in the `x-request-id` header of every response).',
        },
        components: {
          securitySchemes: {
            // One scheme for both credentials: the same header, told apart by the server.
            apiKey: {
              type: 'http',
              scheme: 'bearer',
              description:
                'A Velro API key (`vk_…`, from POST /v1/api-keys) or a login token (a JWT from ' +
                'POST /v1/auth/login or /v1/auth/register)',
            },
          },
        },
        security: BEARER_SECURITY,
      },
      transform: transform(facts),
      transformObject: jsonSchemaTransformObject,
    });
    // The docs are public: mark swagger-ui's own routes so the auth hook lets them through.
    app.addHook('onRoute', (route) => {
      if (route.url === '/docs' || route.url.startsWith('/docs/'))
        route.config = { ...route.config, public: true };
    });
    await app.register(fastifySwaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true } });
    app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'docs' },
);
