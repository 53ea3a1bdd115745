import { DefaultLogger, NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { Client, type Connection } from '@temporalio/client';
import { connectTemporalClient } from '../lib/temporal/client-connection';
import pino from 'pino';
import { checkLogin, prepareDatabase } from '../lib/db/logins';
import { loadConfig } from '../lib/config';
import { resolveEndpoints } from '../lib/wiring/endpoints';
import { createDb, createProviders, createStorage, createSystemDb } from '../lib/wiring/from-config';
import { ensureSearchAttributes, SearchAttributeError } from '../lib/temporal/register-search-attributes';
import { activityDeps, createWorker } from './create-worker';
import { prepareWorkerMetrics } from './metrics-server';
import { ensureReconcilerSchedule } from './reconciler-schedule';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from './workflow-state';

async function main() {
  const config = loadConfig();
  const log = pino({ level: config.LOG_LEVEL, base: { process: 'worker' } });
  const levels = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
  // Before Runtime.install: it binds the SDK's Prometheus exporter where /metrics relays it from.
  const workerMetrics = await prepareWorkerMetrics(config);
  Runtime.install({
    logger: new DefaultLogger('INFO', ({ level, message, meta }) => log[levels[level]](meta ?? {}, message)),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) },
      ...workerMetrics.telemetry,
    },
  });
  // Activities log in as velro_app; the reconciler's system paths as velro_system.
  const { appDatabaseUrl, systemDatabaseUrl, temporalAddress } = resolveEndpoints(config, {
    app: true,
    system: true,
    temporal: true,
  });
  // Given the owner login, apply pending migrations (an advisory lock makes concurrent starts safe);
  // without it, the database is migrated already.
  if (config.DATABASE_URL) {
    await prepareDatabase(config.DATABASE_URL, {
      appDatabaseUrl,
      systemDatabaseUrl,
      signupCredits: config.SIGNUP_CREDITS,
    });
  }
  const onError = (err: Error) => log.warn({ err }, 'idle database connection lost');
  const db = createDb(config, appDatabaseUrl, 'velro-worker', onError);
  const systemDb = createSystemDb(config, systemDatabaseUrl, 'velro-worker-system', onError);
  await checkLogin(db, 'velro_app');
  await checkLogin(systemDb, 'velro_system');
  const connection = await NativeConnection.connect({ address: temporalAddress });
  const clientConnection = await connectTemporalClient(temporalAddress);
  const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });
  await registerSearchAttributes(clientConnection, config.TEMPORAL_NAMESPACE, log);
  const storage = createStorage(config);
  const worker = await createWorker({
    config,
    connection,
    deps: activityDeps(config, {
      db,
      systemDb,
      storage,
      providers: createProviders(config, storage),
      workflowState: workflowStateOf(client),
      stoppedGenerations: stoppedGenerationsOf(client),
      signalGranted: signalCapacityGrantedOf(client),
      metrics: workerMetrics.metrics,
    }),
  });
  const metricsServer = await workerMetrics.serve({ db, systemDb, log });
  const schedule = await ensureReconcilerSchedule(client, config.TEMPORAL_TASK_QUEUE);
  log.info({ schedule }, 'ledger reconciler schedule ready');
  log.info(
    { taskQueue: config.TEMPORAL_TASK_QUEUE, temporalAddress, metricsPort: metricsServer.port },
    'worker started',
  );
  // Runtime shuts the worker down on SIGINT/SIGTERM; run() resolves once it has drained.
  await worker.run();
  await metricsServer.close();
  await clientConnection.close();
  await connection.close();
  await db.end();
  await systemDb.end();
  log.info('worker stopped');
}

/**
 * Velro's search attributes, registered in the namespace if missing. A server that refuses (Temporal
 * Cloud) only gets a warning with the tcld command: an operator may have registered them already.
 */
async function registerSearchAttributes(connection: Connection, namespace: string, log: pino.Logger) {
  try {
    const { added } = await ensureSearchAttributes(connection, namespace);
    log.info({ namespace, added }, 'search attributes ready');
  } catch (err) {
    if (!(err instanceof SearchAttributeError) || err.kind !== 'refused') throw err;
    log.warn({ namespace }, err.message);
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
