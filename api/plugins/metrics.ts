import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { capacityScope } from '../../lib/capacity/limits';
import { bearerTokenCheck } from '../../lib/metrics/bearer-token';
import { capacityGauges } from '../../lib/metrics/capacity-gauges';
import { ApiError } from '../errors';

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
    const capacity = capacityGauges(registry, app.db, capacityScope(app.config));
    const readCapacity = async () => {
      try {
        await capacity.read();
      } catch (err) {
        // The other metrics still answer; these keep their last values.
        app.log.warn({ err }, 'capacity metrics could not be read');
      }
    };
    const authorized = bearerTokenCheck(app.config.METRICS_TOKEN);
    app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
      if (authorized && !authorized(req.headers.authorization)) {
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
