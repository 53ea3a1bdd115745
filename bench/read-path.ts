// The read path against its ceilings measured in the same run, on one API server in its own process:
// authenticated GET /v1/generations/:id and a list page vs GET /health (same server, same client,
// autocannon); then 1,000 open event streams: the server's CPU while they idle, and how soon each
// stream's terminal event arrives after its generation ends.
// READ_PATH_PHASES=reads,streams picks phases; READ_PATH_CPU_PROF=1 adds a --cpu-prof run of the API
// process under the single-read load; READ_PATH_SSE_GENERATIONS sets how many generations the
// 1,000 streams watch (100 by default: 10 streams each).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime } from '@temporalio/worker';
import { generateApiKey } from '../lib/auth/api-keys';
import { loadConfig } from '../lib/config';
import { withSystemTx } from '../lib/db/pool';
import { startStack } from '../lib/dev/embedded-stack';
import * as ledger from '../lib/ledger/ledger';
import { createDb, createProviders, createStorage, createSystemDb } from '../lib/wiring/from-config';
import { buildWorkflowBundle } from '../worker/build-bundle';
import { activityDeps, createWorker } from '../worker/create-worker';
import { generationWorkflowId, progressQuery } from '../workflows/definitions';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from '../worker/workflow-state';
import {
  machineBusySeconds,
  ownCpuSeconds,
  startApiProcess,
  treeCpuSeconds,
  type ApiProcess,
  type CpuSources,
} from './read-path-api';
import { runLoad } from './read-path-load';
import { monotonicUs, summariseProfile, type ProfileSummary } from './read-path-profile';
import { reportReadPath, type ReadCase } from './read-path-report';
import { startWaitSampler } from './read-path-waits';
import { runStreamPhase, type StreamPhaseResult } from './read-path-streams';
import type { Bench } from './run';

const OUT_DIR = '/tmp/velro-bench';
const STREAMS = 1000;
const STREAM_GENERATIONS = Number(process.env.READ_PATH_SSE_GENERATIONS ?? 100);
/** Finished generations: the list's page is 20 of them, the single read is one. */
const FINISHED = 20;
/** Long enough that nothing ends by itself during the stream phase: each ends by its cancel. */
const WAITING_LATENCY_MS = 600_000;
const CANCEL_CONCURRENCY = 10;

const bench: Bench = {
  name: 'read-path',
  description:
    'authenticated GET /v1/generations/:id and list vs GET /health on the same API process; 1,000 SSE streams: idle CPU, terminal-event delay',
  async run({ seconds, clients, log }) {
    const phases = new Set((process.env.READ_PATH_PHASES ?? 'reads,streams').split(','));
    // Core's warnings (workflow tasks over 5 s while the machine is saturated) would drown the table.
    Runtime.install({
      logger: new DefaultLogger('ERROR'),
      telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } },
    });
    const started = new Date();
    // Other work on the machine moves every figure: the 1-minute load average says how much there was.
    const loadAverageAtStart = os.loadavg()[0]!;
    const t0 = performance.now();
    const progress = (line: string) => log(`  [${((performance.now() - t0) / 1000).toFixed(0)} s] ${line}`);
    await fs.mkdir(OUT_DIR, { recursive: true });
    const apiLog = path.join(OUT_DIR, 'read-path-api.log');
    await fs.writeFile(apiLog, '');
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-bench-'));
    await fs.chmod(dataDir, 0o755);
    const stack = await startStack({ dataDir, uiPort: false, log: () => {} });
    const workflowBundlePath = path.join(dataDir, 'workflow-bundle.js');
    await buildWorkflowBundle(workflowBundlePath, new DefaultLogger('ERROR'));
    progress('stack up, workflow bundle built');

    // For the API process and this process's worker alike. Rate limits lifted; capacity caps raised
    // so that every stream generation is at the provider at once rather than in Velro's own queue.
    const env = {
      NODE_ENV: 'development',
      DATABASE_URL: '', // migrated already: the API must not try
      DATABASE_APP_URL: stack.appDatabaseUrl,
      DATABASE_SYSTEM_URL: '',
      TEMPORAL_ADDRESS: stack.temporalAddress,
      VELRO_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_MAX: '1000000',
      RATE_LIMIT_AUTH_MAX: '1000000',
      DATABASE_POOL_MAX: String(Math.max(10, clients)),
      LOCAL_MAX_CONCURRENCY: '10000',
      CAPACITY_ACCOUNT_MAX_IMAGE: '10000',
      ADMISSION_TIMEOUT_MS: '120000',
    };
    const workerConfig = (latencyMs: number) =>
      loadConfig({
        ...env,
        LOG_LEVEL: 'silent',
        DATABASE_SYSTEM_URL: stack.systemDatabaseUrl,
        LOCAL_PROVIDER_LATENCY_MS: String(latencyMs),
      });
    const config = workerConfig(0);
    const db = createDb(config, stack.appDatabaseUrl, 'velro-bench');
    const systemDb = createSystemDb(config, stack.systemDatabaseUrl, 'velro-bench-system');
    const connection = await Connection.connect({ address: stack.temporalAddress });
    const temporal = new Client({ connection });
    const native = await NativeConnection.connect({ address: stack.temporalAddress });
    const storage = createStorage(config);
    // A worker in this process; its provider's latency is fixed per worker, so each phase has its own.
    const startWorker = async (latencyMs: number) => {
      const cfg = workerConfig(latencyMs);
      const worker = await createWorker({
        config: cfg,
        connection: native,
        workflowBundlePath,
        deps: activityDeps(cfg, {
          db,
          systemDb,
          storage,
          providers: createProviders(cfg, storage),
          workflowState: workflowStateOf(temporal),
          stoppedGenerations: stoppedGenerationsOf(temporal),
          signalGranted: signalCapacityGrantedOf(temporal),
        }),
      });
      const running = worker.run();
      return async () => {
        worker.shutdown();
        await running;
      };
    };

    let stopWorker: (() => Promise<void>) | undefined;
    let api: ApiProcess | undefined;
    let floor: ApiProcess | undefined;
    try {
      const key = generateApiKey();
      const userId = await withSystemTx(systemDb, async (tx) => {
        const { rows } = await tx.query<{ id: string }>('SELECT create_user($1, NULL) AS id', [
          `bench-${randomUUID()}@velro.local`,
        ]);
        await tx.query('SELECT create_api_key($1, $2, $3, $4)', [rows[0]!.id, 'bench', key.prefix, key.hash]);
        await ledger.grant(tx, {
          id: randomUUID(),
          userId: rows[0]!.id,
          amount: 10_000_000,
          reason: 'bench',
        });
        return rows[0]!.id;
      });
      const authorization = `Bearer ${key.key}`;
      stopWorker = await startWorker(0);
      api = await startApiProcess(env, { logFile: apiLog });
      const apiUrl = api.baseUrl;
      const cpu: CpuSources = {
        api: api.cpuSeconds,
        bench: ownCpuSeconds,
        stack: () => treeCpuSeconds(dataDir),
        machine: machineBusySeconds,
      };
      progress(`API process ${api.pid} answers on ${apiUrl}`);

      const submit = async (wait: boolean) => {
        const r = await fetch(`${apiUrl}/v1/generations`, {
          method: 'POST',
          headers: {
            authorization,
            'content-type': 'application/json',
            ...(wait ? { prefer: 'wait=60' } : {}),
          },
          body: JSON.stringify({
            model: 'flux-pro-v1.1-ultra',
            input: { prompt: 'bench', aspect_ratio: '1:1' },
          }),
        });
        const body = (await r.json()) as { id: string; status: string; outputs: unknown[] };
        if (r.status !== (wait ? 200 : 202))
          throw new Error(`submit answered ${r.status}: ${JSON.stringify(body)}`);
        return body;
      };

      // 1. Reads vs /health, of finished generations with an output (local provider, no latency).
      const reads: ReadCase[] = [];
      let profile: ProfileSummary | undefined;
      if (phases.has('reads')) {
        const finished = await Promise.all(Array.from({ length: FINISHED }, () => submit(true)));
        if (finished.some((g) => g.status !== 'succeeded' || g.outputs.length === 0)) {
          throw new Error(`a generation did not succeed with an output: ${JSON.stringify(finished)}`);
        }
        progress(`${FINISHED} generations finished`);
        floor = await startApiProcess(
          { ...env, FLOOR_USER_ID: userId },
          { script: 'bench/read-path-floor.ts', logFile: apiLog },
        );
        const cases: { label: string; path: string; auth?: boolean; server?: ApiProcess }[] = [
          { label: 'GET /health (ceiling)', path: '/health' },
          {
            label: 'GET /v1/generations/:id (API key)',
            path: `/v1/generations/${finished[0]!.id}`,
            auth: true,
          },
          { label: 'GET /v1/generations?limit=20 (API key)', path: '/v1/generations?limit=20', auth: true },
          {
            label: 'floor: bare Fastify, the same one statement (no auth, hooks or schema)',
            path: `/floor/${finished[0]!.id}`,
            server: floor,
          },
          { label: 'floor: bare Fastify, SELECT 1', path: '/floor/select-1', server: floor },
        ];
        for (const c of cases) {
          const server = c.server ?? api;
          const load = {
            url: `${server.baseUrl}${c.path}`,
            headers: c.auth ? { authorization } : undefined,
            connections: clients,
            cpu: { ...cpu, api: server.cpuSeconds },
          };
          await runLoad({ ...load, seconds: 1 }); // warm-up
          const stopSampler = startWaitSampler(stack.databaseUrl);
          const result = await runLoad({ ...load, seconds });
          const dbWaits = await stopSampler();
          if (result.non2xx || result.errors) {
            throw new Error(`${c.label}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
          }
          reads.push({ label: c.label, ...result, dbWaits });
          progress(`${c.label}: ${result.requestsPerSecond.toFixed(0)} req/s`);
        }

        if (process.env.READ_PATH_CPU_PROF) {
          // A second API process, profiled, under the single-read load (the figures above are unprofiled).
          const profDir = path.join(dataDir, 'cpu-prof');
          const profiled = await startApiProcess(env, { cpuProfDir: profDir, logFile: apiLog });
          const load = {
            url: `${profiled.baseUrl}${cases[1]!.path}`,
            headers: { authorization },
            connections: clients,
            cpu: { api: profiled.cpuSeconds },
          };
          await runLoad({ ...load, seconds: 1 });
          const sinceUs = monotonicUs(); // start-up and warm-up left out
          await runLoad({ ...load, seconds });
          await profiled.stop();
          profile = await summariseProfile(profDir, { sinceUs });
          const kept = path.join(OUT_DIR, 'read-path-get.cpuprofile');
          await fs.copyFile(profile.file, kept);
          profile.file = kept;
          progress('CPU profile taken');
        }
      }

      // 2. Event streams on generations parked at the provider.
      let streams: StreamPhaseResult | undefined;
      if (phases.has('streams')) {
        await stopWorker();
        stopWorker = undefined;
        stopWorker = await startWorker(WAITING_LATENCY_MS);
        streams = await runStreamPhase({
          apiUrl,
          authorization,
          systemDb,
          submit: () => submit(false),
          streams: STREAMS,
          generations: STREAM_GENERATIONS,
          seconds,
          cancelConcurrency: CANCEL_CONCURRENCY,
          cpu,
          apiExited: api.exitedEarly,
          queryProgress: (id) => temporal.workflow.getHandle(generationWorkflowId(id)).query(progressQuery),
          progress,
        });
      }

      await reportReadPath({
        log,
        outFile: path.join(OUT_DIR, 'read-path.json'),
        meta: {
          startedAt: started.toISOString(),
          cores: os.cpus().length,
          connections: clients,
          seconds,
          loadAverageAtStart,
          loadAverageAtEnd: os.loadavg()[0]!,
        },
        reads,
        streams,
        profile,
      });
    } finally {
      await api?.stop();
      await floor?.stop();
      await stopWorker?.();
      await native.close();
      await connection.close();
      await db.end();
      await systemDb.end();
      await stack.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  },
};

export default bench;
