// The stack the generations bench runs on: embedded Postgres + Temporal dev server, the API in this
// process (one app whose generations go to the zero-cost provider, one to the local renderer), and
// in their own processes Velro's worker, the baselines' worker and the zero-cost provider.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { Pool } from 'pg';
import { buildApp } from '../api/app';
import { generateApiKey } from '../lib/auth/api-keys';
import { loadConfig } from '../lib/config';
import { withSystemTx, type Db, type SystemDb } from '../lib/db/pool';
import { startStack, type Stack } from '../lib/dev/embedded-stack';
import * as ledger from '../lib/ledger/ledger';
import { freePort } from '../lib/net/free-port';
import { createDb, createStorage, createSystemDb } from '../lib/wiring/from-config';
import { buildWorkflowBundle } from '../worker/build-bundle';
import { BASELINE_TABLE_SQL } from './baseline-activity';
import { startChild, type ChildHandle } from './generations-processes';

/** Caps raised so that they never bound the bench (FAL_/LOCAL_MAX_CONCURRENCY, per account). */
const NO_CAP = '5000';
/** The worker's entry point: its sources by default; BENCH_WORKER_ENTRY=dist/worker/main.js runs `npm run build`'s output. */
const WORKER_ENTRY = process.env.BENCH_WORKER_ENTRY ?? 'worker/main.ts';

export interface BenchStack {
  stack: Stack;
  dataDir: string;
  temporal: Client;
  db: Db;
  systemDb: SystemDb;
  /** POST /v1/generations base URLs: generations go to the zero-cost provider / the local renderer. */
  falApi: string;
  localApi: string;
  apiKey: string;
  providerUrl: string;
  /** Velro's worker process (restartable with other settings: `restartWorker`). */
  worker: ChildHandle;
  restartWorker(env?: Record<string, string>, how?: WorkerStart): Promise<ChildHandle>;
  /** The baselines' worker and the zero-cost provider (their pids, for CPU meters). */
  baseline: ChildHandle;
  provider: ChildHandle;
  /** Starts one more Velro (or baselines') worker process on the same queues; stopped by `close`. */
  addWorker(which: 'velro' | 'baseline'): Promise<ChildHandle>;
  /**
   * "Task not found when completing" warnings per child: a workflow task answered after the server
   * had timed it out (10 s), a sign of an overloaded worker or machine.
   */
  childWarnings: { lateWorkflowTasks: Record<string, number>; shown: number };
  close(): Promise<void>;
}

/** How a worker process is started: its entry point and Node flags. */
export interface WorkerStart {
  entry?: string;
  nodeFlags?: string[];
}

export async function startBenchStack(opts: {
  /** Write a CPU profile of the first Velro worker process into this folder (at its exit). */
  cpuProfileDir?: string;
  /** Where Postgres and Temporal come from; default: embedded Postgres and the Temporal dev server. */
  startStack?: (dataDir: string) => Promise<Stack>;
  log: (line: string) => void;
}): Promise<BenchStack> {
  const cleanups: (() => Promise<unknown>)[] = [];
  // Each step bounded: a stuck one (an app waiting on requests still in flight) must not hang the bench.
  const close = async () => {
    for (const c of cleanups.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out after 20 s')), 20_000);
      });
      await Promise.race([c(), timeout])
        .catch((err: unknown) => opts.log(`cleanup: ${String(err)}`))
        .finally(() => clearTimeout(timer));
    }
  };
  // Stopped from outside (a timeout): the children and the stack go too.
  const onSignal = () => void close().finally(() => process.exit(143));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  cleanups.push(async () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  });
  try {
    const childWarnings: BenchStack['childWarnings'] = { lateWorkflowTasks: {}, shown: 0 };
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-bench-'));
    await fs.chmod(dataDir, 0o755);
    cleanups.push(() => fs.rm(dataDir, { recursive: true, force: true }));
    const stack = await (
      opts.startStack ?? ((dir) => startStack({ dataDir: dir, uiPort: false, log: () => {} }))
    )(dataDir);
    cleanups.push(() => stack.stop());

    const owner = new Pool({ connectionString: stack.databaseUrl, max: 1 });
    for (const sql of BASELINE_TABLE_SQL) await owner.query(sql);
    await owner.end();

    const velroBundle = path.join(dataDir, 'workflow-bundle.js');
    const baselineBundle = path.join(dataDir, 'baseline-bundle.js');
    await buildWorkflowBundle(velroBundle, new DefaultLogger('ERROR'));
    const { code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('./baseline-workflow'),
      logger: new DefaultLogger('ERROR'),
    });
    await fs.writeFile(baselineBundle, code);

    const onChildLine = (name: string) => (raw: string) => {
      // eslint-disable-next-line no-control-regex
      const line = raw.replace(/\x1b\[[0-9;]*m/g, '');
      if (/Task not found when completing/.test(line)) {
        childWarnings.lateWorkflowTasks[name] = (childWarnings.lateWorkflowTasks[name] ?? 0) + 1;
      } else if (/"level":(50|60)|\bERROR\b|^\s*at |Error:/.test(line) && childWarnings.shown++ < 40) {
        opts.log(`[${name}] ${line.slice(0, 400)}`);
      }
    };
    const provider = startChild({
      entry: 'bench/zero-cost-provider.ts',
      env: { ZERO_COST_LATENCY_MS: '0' },
      readyLine: /^listening /,
      onLine: onChildLine('provider'),
    });
    cleanups.push(() => provider.stop());
    const providerUrl = (await provider.ready).replace(/^listening /, '');

    const env: Record<string, string> = {
      TEMPORAL_ADDRESS: stack.temporalAddress,
      VELRO_DATA_DIR: dataDir,
      VELRO_PROVIDER: 'fal',
      FAL_KEY: 'bench',
      FAL_QUEUE_URL: providerUrl,
      FAL_JWKS_URL: `${providerUrl}/.well-known/jwks.json`,
      PROVIDER_OUTPUT_ALLOW_LOOPBACK: 'true',
      FAL_MAX_CONCURRENCY: NO_CAP,
      LOCAL_MAX_CONCURRENCY: NO_CAP,
      CAPACITY_ACCOUNT_MAX_IMAGE: NO_CAP,
      LOCAL_PROVIDER_LATENCY_MS: '0',
      DATABASE_POOL_MAX: '30',
      // Hundreds of submits at once wait for their admission rather than answer 503.
      ADMISSION_TIMEOUT_MS: '120000',
      RATE_LIMIT_MAX: '1000000',
      // A worker is restarted while the last may still hold the port: no metrics server.
      WORKER_METRICS_PORT: '0',
    };

    const startWorker = (
      extra: Record<string, string>,
      { entry = WORKER_ENTRY, nodeFlags = [] }: WorkerStart = {},
    ) =>
      startChild({
        entry,
        env: {
          ...env,
          LOG_LEVEL: 'info',
          DATABASE_APP_URL: stack.appDatabaseUrl,
          DATABASE_SYSTEM_URL: stack.systemDatabaseUrl,
          TEMPORAL_WORKFLOW_BUNDLE: velroBundle,
          // Generations parked at the provider wait quietly, as they would for its webhook; the
          // zero-cost provider's finish at once and are never polled (submit answers their status).
          PROVIDER_POLL_INITIAL_MS: '60000',
          ...extra,
        },
        readyLine: /worker started/,
        nodeFlags,
        onLine: onChildLine('worker'),
      });
    const profFlags = opts.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfileDir] : [];
    let worker = startWorker({}, { nodeFlags: profFlags });
    cleanups.push(() => worker.stop());
    const startBaseline = () =>
      startChild({
        entry: 'bench/baseline-worker.ts',
        env: {
          BENCH_TEMPORAL_ADDRESS: stack.temporalAddress,
          BENCH_DATABASE_URL: stack.appDatabaseUrl,
          BENCH_BUNDLE: baselineBundle,
          BENCH_POOL_MAX: env.DATABASE_POOL_MAX!,
        },
        readyLine: /baseline worker started/,
        onLine: onChildLine('baseline'),
      });
    const baseline = startBaseline();
    cleanups.push(() => baseline.stop());

    const connection = await Connection.connect({ address: stack.temporalAddress });
    cleanups.push(() => connection.close());
    const temporal = new Client({ connection });
    const apiConfig = (provider: string, port: number) =>
      loadConfig({ ...env, VELRO_PROVIDER: provider, PORT: String(port), LOG_LEVEL: 'silent' });
    const falConfig = apiConfig('fal', await freePort());
    const db = createDb(falConfig, stack.appDatabaseUrl, 'velro-bench');
    cleanups.push(() => db.end());
    const systemDb = createSystemDb(falConfig, stack.systemDatabaseUrl, 'velro-bench-system');
    cleanups.push(() => systemDb.end());
    const listen = async (config: ReturnType<typeof loadConfig>): Promise<string> => {
      const app: FastifyInstance = await buildApp({
        config,
        db,
        temporal,
        storage: createStorage(config),
        assetSigningKey: Buffer.alloc(32, 1),
      });
      cleanups.push(() => app.close());
      await app.listen({ port: config.PORT, host: '127.0.0.1' });
      return `http://127.0.0.1:${config.PORT}`;
    };
    const falApi = await listen(falConfig);
    const localApi = await listen(apiConfig('local', await freePort()));

    // A user rich enough for everything the bench submits.
    const key = generateApiKey();
    await withSystemTx(systemDb, async (tx) => {
      const { rows } = await tx.query<{ id: string }>('SELECT create_user($1, NULL) AS id', [
        `bench-${randomUUID()}@velro.local`,
      ]);
      await tx.query('SELECT create_api_key($1, $2, $3, $4)', [rows[0]!.id, 'bench', key.prefix, key.hash]);
      await ledger.grant(tx, { id: randomUUID(), userId: rows[0]!.id, amount: 100_000_000, reason: 'bench' });
    });

    await Promise.all([worker.ready, baseline.ready]);
    return {
      stack,
      dataDir,
      temporal,
      db,
      systemDb,
      falApi,
      localApi,
      apiKey: key.key,
      providerUrl,
      childWarnings,
      get worker() {
        return worker;
      },
      baseline,
      provider,
      async addWorker(which) {
        const added = which === 'velro' ? startWorker({}) : startBaseline();
        cleanups.push(() => added.stop());
        await added.ready;
        return added;
      },
      async restartWorker(extra = {}, how = {}) {
        await worker.stop();
        worker = startWorker(extra, how);
        await worker.ready;
        return worker;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
