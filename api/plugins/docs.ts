import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { VERSION } from '../../lib/version';

/** OpenAPI 3.1 generated from the routes' zod schemas: /openapi.json, and interactive docs at /docs. */
export default fp(
  async function docs(app: FastifyInstance) {
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Velro API',
          version: VERSION,
          description:
            'Submit AI image and video generations and pay for them in credits. ' +
            'Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457 problem+json with a stable `code`.',
        },
        components: {
          securitySchemes: {
            apiKey: { type: 'http', scheme: 'bearer', description: 'A Velro API key (vk_…)' },
          },
        },
        security: [{ apiKey: [] }],
      },
      transform: jsonSchemaTransform,
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
