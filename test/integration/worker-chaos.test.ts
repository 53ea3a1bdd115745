import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx } from '../../lib/db/pool';
import { createUser, startApi, waitFor, type ApiHarness, systemDb } from '../support/context';
import { startWorkerProcess } from '../support/worker-process';

const GENERATIONS = 12;
const KILLS = 4;

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
