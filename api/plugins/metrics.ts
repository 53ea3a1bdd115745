import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { capacityScope } from '../../lib/capacity/limits';
import { capacityStats } from '../../lib/capacity/store';
import { ApiError } from '../errors';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Whether the request carries `Authorization: Bearer <token>`, compared in constant time. */
function hasToken(req: FastifyRequest, expected: Buffer): boolean {
  const match = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '');
  // Digests of equal length, so neither the comparison nor its length check leaks the token.
  return timingSafeEqual(digest(match?.[1] ?? ''), expected) && match !== null;
}

/**
 * Prometheus metrics at /metrics: request counts and latencies by route, provider slots in use and
 * generations waiting for one (this deployment's, read at each scrape), plus process metrics.
 * With METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>` gets them.
 */
export default fp(
  async function metrics(app: FastifyInstance) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const requests = new Counter({
      name: 'velro_http_requests_total',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    const latency = new Histogram({
      name: 'velro_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    });
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'unmatched';
      requests.inc({ method: req.method, route, status: reply.statusCode });
      latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    });
    const capacity = ['provider', 'account_kind'] as const;
    const slotsInUse = new Gauge({
      name: 'velro_capacity_slots_in_use',
      help: 'Provider jobs in flight (slots held), by provider and paying account kind (user or team)',
      labelNames: capacity,
      registers: [registry],
    });
    const waiting = new Gauge({
      name: 'velro_capacity_waiting',
      help: 'Generations waiting for a provider slot, by provider and paying account kind',
      labelNames: capacity,
      registers: [registry],
    });
    const scope = capacityScope(app.config);
    const readCapacity = async () => {
      try {
        const stats = await capacityStats(app.db, scope);
        slotsInUse.reset();
        waiting.reset();
        for (const s of stats) {
          const labels = { provider: s.provider, account_kind: s.accountKind };
          slotsInUse.set(labels, s.inUse);
          waiting.set(labels, s.waiting);
        }
      } catch (err) {
        // The other metrics still answer; these keep their last values.
        app.log.warn({ err }, 'capacity metrics could not be read');
      }
    };
    const token = app.config.METRICS_TOKEN;
    const expected = token ? digest(token) : undefined;
    app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
      if (expected && !hasToken(req, expected)) {
        throw new ApiError(401, 'unauthorized', 'Send `Authorization: Bearer <METRICS_TOKEN>`.', {
          headers: { 'www-authenticate': 'Bearer realm="velro-metrics"' },
        });
      }
      await readCapacity();
      return reply.type(registry.contentType).send(await registry.metrics());
    });
  },
  { name: 'metrics' },
);
