import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { VERSION } from '../../lib/version';

const CHECK_TIMEOUT_MS = 2000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

const health: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/',
    {
      config: { public: true },
      schema: {
        tags: ['service'],
        summary: 'Service banner',
        response: { 200: z.object({ message: z.string(), status: z.string() }) },
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
        response: { 200: z.object({ status: z.literal('healthy'), version: z.string() }) },
      },
    },
    async () => ({ status: 'healthy' as const, version: VERSION }),
  );

  const readiness = z.object({
    status: z.enum(['ready', 'unavailable']),
    checks: z.object({ postgres: z.enum(['ok', 'failed']), temporal: z.enum(['ok', 'failed']) }),
  });
  app.get(
    '/ready',
    {
      config: { public: true },
      schema: {
        tags: ['service'],
        summary: 'Readiness: Postgres and Temporal both answer (why not goes to the log only)',
        response: { 200: readiness, 503: readiness },
      },
    },
    async (req, reply) => {
      // The endpoint is public: strangers learn ok or failed, the log gets the addresses and errors.
      const check = (name: string, p: () => Promise<unknown>) =>
        withTimeout(Promise.resolve().then(p), CHECK_TIMEOUT_MS).then(
          () => 'ok' as const,
          (err: unknown) => {
            req.log.warn({ err, check: name }, `readiness: ${name} check failed`);
            return 'failed' as const;
          },
        );
      const [postgres, temporal] = await Promise.all([
        check('postgres', () => app.db.query('SELECT 1')),
        check('temporal', () => app.temporal.workflowService.getSystemInfo({})),
      ]);
      const ok = postgres === 'ok' && temporal === 'ok';
      return reply
        .status(ok ? 200 : 503)
        .send({ status: ok ? 'ready' : 'unavailable', checks: { postgres, temporal } });
    },
  );
};

export default health;
