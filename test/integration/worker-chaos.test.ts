import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx } from '../../lib/db/pool';
import { PROJECT_ROOT } from '../../lib/paths';
import { createUser, startApi, testStack, waitFor, type ApiHarness, systemDb } from '../support/context';

const GENERATIONS = 12;
const KILLS = 4;

/** A real worker process (`npm run worker`'s entry point) on the harness' task queue. */
function startWorkerProcess(api: ApiHarness): { child: ChildProcess; ready: Promise<void> } {
  const stack = testStack();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'worker/main.ts')], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
      WEBHOOK_ALLOW_HTTP: 'true',
      PROVIDER_OUTPUT_ALLOW_LOOPBACK: 'true',
      DATABASE_APP_URL: stack.appDatabaseUrl,
      DATABASE_SYSTEM_URL: stack.systemDatabaseUrl,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_TASK_QUEUE: api.config.TEMPORAL_TASK_QUEUE,
      TEMPORAL_WORKFLOW_BUNDLE: stack.workflowBundlePath,
      VELRO_DATA_DIR: api.config.dataDir,
      LOCAL_PROVIDER_LATENCY_MS: api.config.LOCAL_PROVIDER_LATENCY_MS.toString(),
      LOCAL_PROVIDER_FAILURE_RATE: api.config.LOCAL_PROVIDER_FAILURE_RATE.toString(),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('worker started')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`worker exited early (${code ?? signal})`)));
  });
  child.stderr!.resume();
  return { child, ready };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a worker killed with SIGKILL again and again', () => {
  let api: ApiHarness;
  const workers: ChildProcess[] = [];
  beforeAll(async () => {
    api = await startApi({ LOCAL_PROVIDER_LATENCY_MS: '1500', LOCAL_PROVIDER_FAILURE_RATE: '0.3' });
  });
  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await api?.stop();
  });

  it('loses no generation and charges or refunds each exactly once', { timeout: 300_000 }, async () => {
    const user = await createUser(api.db, GENERATIONS * 50);
    const ids: string[] = [];
    let killedMidFlight = 0;
    for (let round = 0; round <= KILLS; round++) {
      const worker = startWorkerProcess(api);
      workers.push(worker.child);
      await worker.ready;
      if (round === 0) {
        const answers = await Promise.all(
          Array.from({ length: GENERATIONS }, (_, i) =>
            api.app.inject({
              method: 'POST',
              url: '/v1/generations',
              headers: user.auth,
              payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: `chaos ${i}`, aspect_ratio: '1:1' } },
            }),
          ),
        );
        for (const a of answers) {
          expect(a.statusCode).toBe(202);
          ids.push(a.json().id);
        }
      }
      if (round === KILLS) break; // the last worker lives and finishes the work
      await sleep(400 + Math.random() * 1200);
      const inFlight = await withSystemTx(systemDb(), (tx) =>
        tx.query(`SELECT 1 FROM generations WHERE id = ANY($1) AND completed_at IS NULL`, [ids]),
      );
      killedMidFlight += inFlight.rowCount ? 1 : 0;
      worker.child.kill('SIGKILL');
      await new Promise((r) => worker.child.once('exit', r));
    }

    const final = await waitFor(
      async () => {
        const list = await api.app.inject({ url: `/v1/generations?limit=100`, headers: user.auth });
        return list.json().data as { id: string; status: string; credits: { state: string } }[];
      },
      (gens) =>
        gens.length === GENERATIONS &&
        gens.every((g) => ['succeeded', 'failed', 'canceled'].includes(g.status)),
      240_000,
    );
    expect(final.map((g) => g.id).sort()).toEqual([...ids].sort());
    // The kills must have hit work in progress, or this test proves nothing.
    expect(killedMidFlight).toBeGreaterThanOrEqual(2);

    const ledger = await withSystemTx(systemDb(), async (tx) => {
      const { rows } = await tx.query<{ generation_id: string; kinds: string[] }>(
        `SELECT generation_id, array_agg(kind ORDER BY kind) AS kinds FROM credit_transfers
         WHERE generation_id = ANY($1) GROUP BY generation_id`,
        [ids],
      );
      return new Map(rows.map((r) => [r.generation_id, r.kinds]));
    });
    let succeeded = 0;
    for (const g of final) {
      if (g.status === 'succeeded') {
        succeeded++;
        expect(ledger.get(g.id)).toEqual(['commit', 'reserve']);
        expect(g.credits.state).toBe('charged');
      } else {
        expect(ledger.get(g.id)).toEqual(['release', 'reserve']);
        expect(g.credits.state).toBe('refunded');
      }
    }
    const balance = (await api.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    expect(balance).toEqual({
      available: (GENERATIONS - succeeded) * 50,
      reserved: 0,
      spent: succeeded * 50,
    });
  });
});
