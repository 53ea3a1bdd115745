import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { capacityScope } from '../lib/capacity/limits';
import type { Config } from '../lib/config';
import type { Db, SystemDb } from '../lib/db/pool';
import { bearerTokenCheck } from '../lib/metrics/bearer-token';
import { capacityGauges } from '../lib/metrics/capacity-gauges';
import { ledgerGauges } from '../lib/metrics/ledger-gauges';
import { readSdkMetrics, sdkExporter, type SdkExporter } from '../lib/metrics/sdk-exporter';
import { noWorkerMetrics, workerMetrics, type WorkerMetrics } from '../lib/metrics/worker-metrics';

/** Each source of a scrape gets this long; Prometheus' own scrape timeout is 10 s by default. */
const SOURCE_TIMEOUT_MS = 3_000;

export interface WorkerMetricsDeps {
  /** velro_app: capacity_stats. */
  db: Db;
  /** velro_system: the ledger's unsettled reservations, across accounts. */
  systemDb: SystemDb;
  log: { warn(obj: object, msg: string): void };
}

export interface WorkerMetricsServer {
  /** Where it listens; undefined when WORKER_METRICS_PORT is 0. */
  port: number | undefined;
  close(): Promise<void>;
}

export interface WorkerMetricsSetup {
  /** Spread into Runtime.install's telemetryOptions (empty when the metrics are off). */
  telemetry: Partial<SdkExporter['telemetry']>;
  /** The activities' `metrics` dependency. */
  metrics: WorkerMetrics;
  /** Starts /metrics on WORKER_METRICS_HOST:WORKER_METRICS_PORT. */
  serve(deps: WorkerMetricsDeps): Promise<WorkerMetricsServer>;
}

/**
 * The worker's /metrics: Velro's (generations, provider errors, capacity, ledger) and the Temporal
 * SDK's, whose exporter listens on a loopback port of its own and is relayed here, so one scrape
 * of one port gets both. Call it before Runtime.install, which takes `telemetry`.
 */
export async function prepareWorkerMetrics(config: Config): Promise<WorkerMetricsSetup> {
  if (config.WORKER_METRICS_PORT === 0) {
    return {
      telemetry: {},
      metrics: noWorkerMetrics,
      serve: async () => ({ port: undefined, close: async () => {} }),
    };
  }
  const exporter = await sdkExporter();
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = workerMetrics(registry);
  return {
    telemetry: exporter.telemetry,
    metrics,
    serve: (deps) => serveMetrics(config, registry, exporter.url, deps),
  };
}

async function serveMetrics(
  config: Config,
  registry: Registry,
  sdkUrl: string,
  { db, systemDb, log }: WorkerMetricsDeps,
): Promise<WorkerMetricsServer> {
  const sourceUp = new Gauge({
    name: 'velro_metrics_source_up',
    help: 'Whether the last scrape could read this source (capacity, ledger, temporal_sdk): 1 or 0',
    labelNames: ['source'],
    registers: [registry],
  });
  const capacity = capacityGauges(registry, db, capacityScope(config));
  const ledger = ledgerGauges(registry, systemDb);
  const read = async <T>(source: string, work: () => Promise<T>): Promise<T | undefined> => {
    try {
      const value = await withTimeout(work(), SOURCE_TIMEOUT_MS, source);
      sourceUp.set({ source }, 1);
      return value;
    } catch (err) {
      // The other sources still answer; this one's gauges keep their last values.
      sourceUp.set({ source }, 0);
      log.warn({ err, source }, 'worker metrics: a source could not be read');
      return undefined;
    }
  };
  const authorized = bearerTokenCheck(config.METRICS_TOKEN);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') return problem(res, 404, 'not_found', 'Only /metrics is served here.');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return problem(res, 405, 'method_not_allowed', 'Use GET.', { allow: 'GET, HEAD' });
    }
    if (authorized && !authorized(req.headers.authorization)) {
      return problem(res, 401, 'unauthorized', 'Send `Authorization: Bearer <METRICS_TOKEN>`.', {
        'www-authenticate': 'Bearer realm="velro-metrics"',
      });
    }
    const [, , sdk] = await Promise.all([
      read('capacity', capacity.read),
      read('ledger', ledger.read),
      read('temporal_sdk', () => readSdkMetrics(sdkUrl, SOURCE_TIMEOUT_MS)),
    ]);
    const velro = await registry.metrics();
    const body = sdk ? `${velro}\n${sdk.trimEnd()}\n` : velro;
    res.writeHead(200, { 'content-type': registry.contentType });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.warn({ err }, 'worker metrics: the scrape failed');
      if (!res.headersSent) problem(res, 500, 'internal_error', 'The metrics could not be collected.');
      else res.destroy();
    });
  });
  server.requestTimeout = 15_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      const where = `${config.WORKER_METRICS_HOST}:${config.WORKER_METRICS_PORT}`;
      reject(
        new Error(`worker metrics cannot listen on ${where} (WORKER_METRICS_PORT, 0 = off): ${err.message}`),
      );
    });
    server.listen(config.WORKER_METRICS_PORT, config.WORKER_METRICS_HOST, () => {
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** RFC 9457 problem details in the API's shape (api/errors.ts), which the worker does not import. */
function problem(
  res: ServerResponse,
  status: number,
  code: string,
  detail: string,
  headers: Record<string, string> = {},
) {
  const titles: Record<number, string> = {
    401: 'Unauthorized',
    404: 'Not Found',
    405: 'Method Not Allowed',
    500: 'Internal Server Error',
  };
  const body = {
    type: `urn:velro:error:${code}`,
    title: titles[status],
    status,
    detail,
    code,
    requestId: randomUUID(),
  };
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
  res.end(JSON.stringify(body));
}
