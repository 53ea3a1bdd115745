import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import type { ReconcileReport } from '../../activities/reconciliation';
import { withSystemTx, withUserTx } from '../../lib/db/pool';
import { transferId } from '../../lib/ledger/ids';
import * as ledger from '../../lib/ledger/ledger';
import { createProviders, createStorage } from '../../lib/wiring/from-config';
import type { ActivityDeps } from '../../activities';
import { activityDeps } from '../../worker/create-worker';
import { stoppedGenerationsOf } from '../../worker/workflow-state';
import { ensureReconcilerSchedule } from '../../worker/reconciler-schedule';
import { RECONCILER_SCHEDULE_ID } from '../../workflows/reconciler';
import { createUser, startHarness, testStack, waitFor, type Harness, systemDb } from '../support/context';
import { addMember, createTeam, grantTeam } from '../support/teams';

describe('the ledger reconciler', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '100' });
  });
  afterAll(() => h?.stop());

  /** A generation row plus its reservation, as admission leaves them, with a chosen deadline. */
  async function reservedGeneration(userId: string, deadline: Date) {
    const generationId = randomUUID();
    await withUserTx(h.db, userId, async (tx) => {
      await tx.query(
        `INSERT INTO generations (id, user_id, model, input, credits, provider, status, stage)
         VALUES ($1, $2, 'imagen4-ultra', '{"prompt":"x"}', 45, 'local', 'running', 'waiting for provider')`,
        [generationId, userId],
      );
      await ledger.reserve(tx, {
        id: transferId(generationId, 'reserve'),
        amount: 45,
        generationId,
        deadline,
      });
    });
    return generationId;
  }

  /** The kinds of transfer each generation has, sorted: e.g. ['release', 'reserve']. */
  async function transferKinds(...generationIds: string[]): Promise<Record<string, string[]>> {
    return withSystemTx(systemDb(), async (tx) => {
      const { rows } = await tx.query<{ generation_id: string; kinds: string[] }>(
        `SELECT generation_id, array_agg(kind ORDER BY kind) AS kinds FROM credit_transfers
         WHERE generation_id = ANY($1) GROUP BY generation_id`,
        [generationIds],
      );
      return Object.fromEntries(rows.map((r) => [r.generation_id, r.kinds]));
    });
  }

  function reconcileWith(
    workflowState: (id: string) => Promise<'running' | 'closed' | 'missing'>,
    stoppedGenerations: ActivityDeps['stoppedGenerations'] = async () => [],
  ) {
    const deps = activityDeps(h.config, {
      db: h.db,
      systemDb: systemDb(),
      storage: createStorage(h.config),
      providers: createProviders(h.config, createStorage(h.config)),
      workflowState,
      stoppedGenerations,
    });
    return new MockActivityEnvironment().run(
      createActivities(deps).reconcileLedger,
    ) as Promise<ReconcileReport>;
  }

  it('releases overdue reservations whose workflow is gone, and leaves running ones alone', async () => {
    const user = await createUser(h.db, 200);
    const past = new Date(Date.now() - 60_000);
    const abandoned = await reservedGeneration(user.userId, past);
    const stillRunning = await reservedGeneration(user.userId, past);
    const notDue = await reservedGeneration(user.userId, new Date(Date.now() + 3_600_000));

    const report = await reconcileWith(async (workflowId) =>
      workflowId.endsWith(stillRunning) ? 'running' : 'missing',
    );
    expect(report.releasedReservations).toBeGreaterThanOrEqual(1);

    const kinds = await transferKinds(abandoned, stillRunning, notDue);
    expect(kinds[abandoned]).toEqual(['release', 'reserve']);
    expect(kinds[stillRunning]).toEqual(['reserve']);
    expect(kinds[notDue]).toEqual(['reserve']);

    const gen = (await h.app.inject({ url: `/v1/generations/${abandoned}`, headers: user.auth })).json();
    expect(gen).toMatchObject({
      status: 'failed',
      error: { code: 'abandoned' },
      credits: { state: 'refunded' },
    });
    expect((await h.app.inject({ url: '/v1/credits', headers: user.auth })).json()).toEqual({
      available: 110,
      reserved: 90,
      spent: 0,
    });

    // A second pass changes nothing for it: the release is a replay.
    await reconcileWith(async () => 'missing');
    const after = await withSystemTx(systemDb(), (tx) =>
      tx.query('SELECT 1 FROM credit_transfers WHERE generation_id = $1', [abandoned]),
    );
    expect(after.rowCount).toBe(2);
  });

  it('releases a reservation orphaned by a failed admission (no generation row) once its workflow is closed', async () => {
    const user = await createUser(h.db, 200);
    /** A reservation as admission makes it before writing the row, `ageMs` old, row never written. */
    async function orphan(ageMs: number) {
      const generationId = randomUUID();
      const id = transferId(generationId, 'reserve');
      await ledger.reserve(h.db, {
        userId: user.userId,
        id,
        amount: 45,
        generationId,
        deadline: new Date(Date.now() + 3_600_000),
      });
      // Only the owner can rewrite a transfer (the append-only trigger is skipped in replica mode).
      const owner = new pg.Client({ connectionString: testStack().databaseUrl });
      await owner.connect();
      try {
        await owner.query('BEGIN');
        await owner.query('SET LOCAL session_replication_role = replica');
        await owner.query(
          `UPDATE credit_transfers SET created_at = now() - $2 * interval '1 millisecond' WHERE id = $1`,
          [id, ageMs],
        );
        await owner.query('COMMIT');
      } finally {
        await owner.end();
      }
      return generationId;
    }
    const closed = await orphan(5 * 60_000);
    const running = await orphan(5 * 60_000);
    const fresh = await orphan(0); // admission may still be writing the row

    const report = await reconcileWith(async (workflowId) =>
      workflowId.endsWith(running) ? 'running' : 'closed',
    );
    expect(report.releasedReservations).toBeGreaterThanOrEqual(1);
    const kinds = await transferKinds(closed, running, fresh);
    expect(kinds).toEqual({ [closed]: ['release', 'reserve'], [running]: ['reserve'], [fresh]: ['reserve'] });
    expect(await withUserTx(h.db, user.userId, (tx) => ledger.balance(tx, user.userId))).toMatchObject({
      available: 110,
      reserved: 90,
    });
  });

  it("releases a team member's overdue reservation into the team account and gives the member's monthly room back", async () => {
    const owner = await createUser(h.db);
    const member = await createUser(h.db);
    const teamId = await createTeam(h.db, owner.userId);
    await addMember(h.db, teamId, owner.userId, member, 'member');
    await grantTeam(teamId, 500);
    await withSystemTx(systemDb(), (tx) =>
      tx.query('UPDATE team_members SET monthly_spend_limit = 90 WHERE team_id = $1 AND user_id = $2', [
        teamId,
        member.userId,
      ]),
    );
    const reserveFor = async (deadline: Date) => {
      const generationId = randomUUID();
      await withUserTx(h.db, member.userId, async (tx) => {
        await tx.query(
          `INSERT INTO generations (id, user_id, team_id, model, input, credits, provider, status, stage)
           VALUES ($1, $2, $3, 'imagen4-ultra', '{"prompt":"x"}', 45, 'local', 'running', 'waiting for provider')`,
          [generationId, member.userId, teamId],
        );
        await ledger.reserve(tx, {
          id: transferId(generationId, 'reserve'),
          amount: 45,
          generationId,
          deadline,
          teamId,
        });
      });
      return generationId;
    };
    const abandoned = await reserveFor(new Date(Date.now() - 60_000));
    const open = await reserveFor(new Date(Date.now() + 3_600_000));
    // 90 of 90 used: the member can reserve nothing more this month.
    await expect(reserveFor(new Date(Date.now() + 3_600_000))).rejects.toMatchObject({
      code: 'spend_limit_exceeded',
    });

    await reconcileWith(async () => 'missing');
    expect(await transferKinds(abandoned, open)).toEqual({
      [abandoned]: ['release', 'reserve'],
      [open]: ['reserve'],
    });
    const teamState = await withSystemTx(systemDb(), async (tx) => {
      const account = await ledger.teamBalance(tx, teamId);
      const usage = await tx.query<{ used: number }>(
        'SELECT used FROM team_member_usage WHERE team_id = $1 AND user_id = $2',
        [teamId, member.userId],
      );
      const gen = await tx.query<{ status: string; error_code: string }>(
        'SELECT status, error_code FROM generations WHERE id = $1',
        [abandoned],
      );
      return { account, used: usage.rows[0]!.used, generation: gen.rows[0] };
    });
    expect(teamState).toEqual({
      account: { available: 455, reserved: 45, spent: 0, granted: 500, expired: 0 },
      used: 45,
      generation: { status: 'failed', error_code: 'abandoned' },
    });
    // The room it got back is usable, and the release was made as the member who reserved.
    await reserveFor(new Date(Date.now() + 3_600_000));
    const release = await withSystemTx(systemDb(), (tx) =>
      tx.query('SELECT user_id, team_id FROM credit_transfers WHERE generation_id = $1 AND kind = $2', [
        abandoned,
        'release',
      ]),
    );
    expect(release.rows).toEqual([{ user_id: member.userId, team_id: teamId }]);
  });

  it("refunds a generation an operator terminated (which runs none of its code) in the reconciler's next run", async () => {
    // A provider that never finishes on its own, so the generation is running when it is terminated.
    const slow = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '600000' });
    try {
      const user = await createUser(slow.db, 100);
      const submitted = await slow.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: user.auth,
        payload: { model: 'imagen4-ultra', input: { prompt: 'a lighthouse' } },
      });
      expect(submitted.statusCode).toBe(202);
      const id: string = submitted.json().id;
      const credits = () => slow.app.inject({ url: '/v1/credits', headers: user.auth }).then((r) => r.json());
      expect(await credits()).toEqual({ available: 55, reserved: 45, spent: 0 });

      await slow.temporal.workflow.getHandle(`generation-${id}`).terminate('operator test');
      // Its deadline is an hour and more away: only the visibility pass can find it now.
      await waitFor(
        async () => {
          await reconcileWith(async () => 'closed', stoppedGenerationsOf(slow.temporal));
          return credits();
        },
        (c) => c.reserved === 0,
        15_000,
      );
      expect(await credits()).toEqual({ available: 100, reserved: 0, spent: 0 });
      const gen = (await slow.app.inject({ url: `/v1/generations/${id}`, headers: user.auth })).json();
      expect(gen).toMatchObject({
        status: 'failed',
        error: {
          code: 'terminated',
          message: 'The generation was stopped by an operator; its credits were refunded.',
        },
        credits: { state: 'refunded' },
        outputs: [],
      });
      // Another run finds it again in its window and changes nothing: the release is a replay.
      await reconcileWith(async () => 'closed', stoppedGenerationsOf(slow.temporal));
      expect(await credits()).toEqual({ available: 100, reserved: 0, spent: 0 });
    } finally {
      await slow.stop();
    }
  });

  it('reports a terminal generation that was never settled', async () => {
    const user = await createUser(h.db, 100);
    const orphan = await reservedGeneration(user.userId, new Date(Date.now() + 3_600_000));
    await withUserTx(h.db, user.userId, (tx) =>
      tx.query(`UPDATE generations SET status = 'succeeded', completed_at = now() WHERE id = $1`, [orphan]),
    );
    const report = await reconcileWith(async () => 'running');
    expect(report.unsettledGenerations).toContain(orphan);
  });

  it('runs every minute as a Temporal Schedule, created once', async () => {
    expect(await ensureReconcilerSchedule(h.temporal, h.config.TEMPORAL_TASK_QUEUE)).toMatch(
      /created|exists/,
    );
    expect(await ensureReconcilerSchedule(h.temporal, h.config.TEMPORAL_TASK_QUEUE)).toBe('exists');
    const schedule = await h.temporal.schedule.getHandle(RECONCILER_SCHEDULE_ID).describe();
    expect(schedule.spec.intervals?.[0]?.every).toBe(60_000);
    expect(schedule.action.workflowType).toBe('LedgerReconcilerWorkflow');
  });
});
