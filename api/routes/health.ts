import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { checkDependencies } from '../../lib/health/readiness';
import { VERSION } from '../../lib/version';
import { bannerSchema, livenessSchema, readinessSchema } from '../schemas/health';

const health: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/',
    {
      config: { public: true },
      schema: {
        tags: ['service'],
        summary: 'Service banner',
        response: { 200: bannerSchema },
      },
    },
    async () => ({ message: 'Velro API', status: 'operational' }),
  );

  app.get(
    '/health',
    {
      config: { public: true },
      schema: {
        tags: ['service'],
        summary: 'Liveness: the process answers (no dependency is checked)',
        response: { 200: livenessSchema },
      },
    },
    async () => ({ status: 'healthy' as const, version: VERSION }),
  );

  app.get(
    '/ready',
    {
      config: { public: true },
      schema: {
        tags: ['service'],
        summary: 'Readiness: Postgres and Temporal both answer (why not goes to the log only)',
        response: { 200: readinessSchema, 503: readinessSchema },
      },
    },
    async (req, reply) => {
      // The endpoint is public: strangers learn ok or failed, the log gets the addresses and errors.
      const checks = await checkDependencies({ db: app.db, temporal: app.temporal }, (check, err) =>
        req.log.warn({ err, check }, `readiness: ${check} check failed`),
      );
      const ok = checks.postgres === 'ok' && checks.temporal === 'ok';
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks });
    },
  );
};

export default health;
