import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withUserTx } from '../../lib/db/pool';
import { checkLedger } from '../../lib/ledger/check';
import * as ledger from '../../lib/ledger/ledger';
import { createUser, startHarness, waitFor, type Harness, systemDb } from '../support/context';

const SUBMITS = 200;
const COST = 50; // flux-pro-v1.1-ultra
const AFFORDABLE = 50;
/*
 * The local provider renders each output synchronously (~200 ms of CPU for a 1024 px PNG) in this
 * process, which also runs the API and the worker. With a short latency the first renders land in
 * the middle of the admission burst and slow it down; 10 s keeps most of them out of it.
 */
const PROVIDER_LATENCY_MS = 10_000;

describe('200 simultaneous submits from one user whose credits cover 50', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      LOCAL_PROVIDER_LATENCY_MS: String(PROVIDER_LATENCY_MS),
      DATABASE_POOL_MAX: '20',
    });
  });
  afterAll(() => h?.stop());

  it(
    'admits exactly 50, refuses 150 with 402, and charges exactly what it covered',
    { timeout: 300_000 },
    async () => {
      // A running service is warm: one generation first loads the workflow code and opens connections.
      const warm = await createUser(h.db, COST);
      const first = await h.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: warm.auth,
        payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: 'warm-up' } },
      });
      expect(first.statusCode).toBe(202);

      const user = await createUser(h.db, COST * AFFORDABLE);
      const started = performance.now();
      const answers = await Promise.all(
        Array.from({ length: SUBMITS }, (_, i) =>
          h.app.inject({
            method: 'POST',
            url: '/v1/generations',
            headers: user.auth,
            payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: `storm #${i}` } },
          }),
        ),
      );
      const answeredMs = performance.now() - started;

      const byStatus: Record<number, number> = {};
      for (const a of answers) byStatus[a.statusCode] = (byStatus[a.statusCode] ?? 0) + 1;
      // Never more admitted than the credits cover, whatever the load.
      expect(byStatus[202] ?? 0).toBeLessThanOrEqual(AFFORDABLE);
      expect(
        byStatus,
        `503s mean admissions not decided within ADMISSION_TIMEOUT_MS (all answered after ${(answeredMs / 1000).toFixed(1)} s)`,
      ).toEqual({ 202: AFFORDABLE, 402: SUBMITS - AFFORDABLE });
      for (const a of answers.filter((r) => r.statusCode === 402)) {
        expect(a.json()).toMatchObject({ status: 402, code: 'insufficient_credits' });
      }
      const admitted = answers.filter((a) => a.statusCode === 202).map((a) => a.json().id as string);
      expect(new Set(admitted).size).toBe(AFFORDABLE);

      const statuses = await waitFor(
        () =>
          withUserTx(h.db, user.userId, async (tx) => {
            const { rows } = await tx.query<{ status: string; n: number }>(
              'SELECT status, count(*)::int AS n FROM generations WHERE user_id = $1 GROUP BY status',
              [user.userId],
            );
            return Object.fromEntries(rows.map((r) => [r.status, r.n]));
          }),
        (s) => (s.succeeded ?? 0) + (s.failed ?? 0) + (s.canceled ?? 0) === AFFORDABLE,
        240_000,
      );
      const doneMs = performance.now() - started;
      // Refused submits leave no row at all.
      expect(statuses).toEqual({ succeeded: AFFORDABLE });

      const balance = await withUserTx(h.db, user.userId, (tx) => ledger.balance(tx, user.userId));
      expect(balance).toEqual({
        available: 0,
        reserved: 0,
        spent: COST * AFFORDABLE,
        granted: COST * AFFORDABLE,
        expired: 0,
      });
      const { rows } = await withUserTx(h.db, user.userId, (tx) =>
        tx.query<{ kind: string; n: number }>(
          'SELECT kind, count(*)::int AS n FROM credit_transfers WHERE user_id = $1 GROUP BY kind ORDER BY kind',
          [user.userId],
        ),
      );
      expect(rows).toEqual([
        { kind: 'commit', n: AFFORDABLE },
        { kind: 'grant', n: 1 },
        { kind: 'reserve', n: AFFORDABLE },
      ]);
      const { accountId } = (
        await withUserTx(h.db, user.userId, (tx) =>
          tx.query<{ accountId: string }>(
            'SELECT id AS "accountId" FROM credit_accounts WHERE user_id = $1',
            [user.userId],
          ),
        )
      ).rows[0]!;
      // Other test files share the database: this user's account and generations must be sound.
      const problems = (await checkLedger(systemDb())).filter(
        (p) => p.accountId === accountId || admitted.includes(p.generationId ?? ''),
      );
      expect(problems).toEqual([]);

      console.log(
        `[ledger-concurrency] ${SUBMITS} submits answered in ${(answeredMs / 1000).toFixed(1)} s; ` +
          `all ${AFFORDABLE} admitted generations terminal after ${(doneMs / 1000).toFixed(1)} s`,
      );
    },
  );
});
