// Submit latency and end-to-end generation throughput, beside the Temporal dev server's own
// baselines measured in the same run (plain workflow start; trivial workflows per second).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { buildApp } from '../api/app';
import { generateApiKey } from '../lib/auth/api-keys';
import { loadConfig } from '../lib/config';
import { withSystemTx, type SystemDb } from '../lib/db/pool';
import * as ledger from '../lib/ledger/ledger';
import { freePort } from '../lib/net/free-port';
import { startStack } from '../lib/dev/embedded-stack';
import { createDb, createProviders, createStorage, createSystemDb } from '../lib/wiring/from-config';
import { activityDeps, createWorker } from '../worker/create-worker';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from '../worker/workflow-state';
import type { Bench } from './run';

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const fmt = (n: number) => n.toFixed(1);

const bench: Bench = {
  name: 'generations',
  description:
    'submit latency (Update-with-Start + reserve) and end-to-end generations/s vs the dev server baselines',
  async run({ log }) {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-bench-'));
    await fs.chmod(dataDir, 0o755);
    const stack = await startStack({ dataDir, uiPort: false, log: () => {} });
    const port = await freePort();
    const config = loadConfig({
      DATABASE_URL: stack.databaseUrl,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      VELRO_DATA_DIR: dataDir,
      PORT: String(port),
      LOG_LEVEL: 'silent',
      LOCAL_PROVIDER_LATENCY_MS: '0',
      DATABASE_POOL_MAX: '30',
      // 200 submits at once queue behind the renders of this same process: wait rather than answer 503.
      ADMISSION_TIMEOUT_MS: '120000',
    });
    const db = createDb(config, stack.appDatabaseUrl, 'velro-bench');
    const systemDb = createSystemDb(config, stack.systemDatabaseUrl, 'velro-bench-system');
    const connection = await Connection.connect({ address: stack.temporalAddress });
    const temporal = new Client({ connection });
    const storage = createStorage(config);
    const app = await buildApp({ config, db, temporal, storage, assetSigningKey: Buffer.alloc(32, 1) });
    await app.listen({ port, host: '127.0.0.1' });
    const native = await NativeConnection.connect({ address: stack.temporalAddress });
    const worker = await createWorker({
      config,
      connection: native,
      deps: activityDeps(config, {
        db,
        systemDb,
        storage,
        providers: createProviders(config, storage),
        workflowState: workflowStateOf(temporal),
        stoppedGenerations: stoppedGenerationsOf(temporal),
        signalGranted: signalCapacityGrantedOf(temporal),
      }),
    });
    const trivialWorker = await Worker.create({
      connection: native,
      taskQueue: 'bench-trivial',
      workflowBundle: await bundleWorkflowCode({
        workflowsPath: require.resolve('./trivial-workflow'),
        logger: new DefaultLogger('ERROR'),
      }),
    });
    const running = Promise.all([worker.run(), trivialWorker.run()]);

    try {
      // Baseline 1: plain workflow start latency (nothing runs it: a queue with no worker).
      const starts: number[] = [];
      for (let i = 0; i < 100; i++) {
        const t = performance.now();
        const h = await temporal.workflow.start('TrivialWorkflow', {
          taskQueue: 'bench-nobody',
          workflowId: `start-${randomUUID()}`,
        });
        starts.push(performance.now() - t);
        await h.terminate();
      }
      starts.sort((a, b) => a - b);

      // Baseline 2: trivial workflows per second, 200 at once.
      let t0 = performance.now();
      await Promise.all(
        Array.from({ length: 200 }, () =>
          temporal.workflow.execute('TrivialWorkflow', {
            taskQueue: 'bench-trivial',
            workflowId: `trivial-${randomUUID()}`,
          }),
        ),
      );
      const trivialPerSecond = 200 / ((performance.now() - t0) / 1000);

      // A user rich enough for everything below.
      const key = generateApiKey();
      await withSystemTx(systemDb, async (tx) => {
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
      });
      const submit = () =>
        fetch(`http://127.0.0.1:${port}/v1/generations`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'flux-pro-v1.1-ultra',
            input: { prompt: 'bench', aspect_ratio: '1:1' },
          }),
        }).then(async (r) => {
          if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${await r.text()}`);
          return ((await r.json()) as { id: string }).id;
        });

      // Submit latency over real HTTP, one at a time.
      const latencies: number[] = [];
      for (let i = 0; i < 100; i++) {
        const t = performance.now();
        await submit();
        latencies.push(performance.now() - t);
      }
      latencies.sort((a, b) => a - b);
      // Let those finish before the throughput run.
      await waitAllDone(systemDb, 60_000);

      // End-to-end throughput: 200 generations submitted at once, until the last is stored and charged.
      t0 = performance.now();
      const ids = await Promise.all(Array.from({ length: 200 }, submit));
      await waitAllDone(systemDb, 300_000);
      const genPerSecond = ids.length / ((performance.now() - t0) / 1000);

      log('| figure | value |');
      log('| --- | --- |');
      log(
        `| plain workflow.start p50 / p95 (baseline) | ${fmt(percentile(starts, 0.5))} / ${fmt(percentile(starts, 0.95))} ms |`,
      );
      log(
        `| POST /v1/generations p50 / p95 (HTTP, Update-with-Start, reserve) | ${fmt(percentile(latencies, 0.5))} / ${fmt(percentile(latencies, 0.95))} ms |`,
      );
      log(
        `| submit p50 / plain start p50 | ${(percentile(latencies, 0.5) / percentile(starts, 0.5)).toFixed(2)} |`,
      );
      log(`| trivial workflows/s, 200 at once (baseline) | ${fmt(trivialPerSecond)} |`);
      log(
        `| generations/s end to end, 200 at once (1024² PNG rendered, stored, charged) | ${fmt(genPerSecond)} |`,
      );
      log(`| generations/s / trivial workflows/s | ${(genPerSecond / trivialPerSecond).toFixed(2)} |`);
    } finally {
      worker.shutdown();
      trivialWorker.shutdown();
      await running;
      await app.close();
      await native.close();
      await connection.close();
      await db.end();
      await systemDb.end();
      await stack.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  },
};

async function waitAllDone(db: SystemDb, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await withSystemTx(db, (tx) =>
      tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM generations WHERE completed_at IS NULL`),
    );
    if (rows[0]!.n === 0) return;
    if (Date.now() > until) throw new Error(`${rows[0]!.n} generations still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export default bench;
