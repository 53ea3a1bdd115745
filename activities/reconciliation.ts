import { log, metricMeter } from '@temporalio/activity';
import { withSystemTx } from '../lib/db/pool';
import { transferId } from '../lib/ledger/ids';
import * as ledger from '../lib/ledger/ledger';
import { generationWorkflowId } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

export interface ReconcileReport {
  expiredCredits: number;
  releasedReservations: number;
  /** Generations that are terminal without exactly one commit or release: need an operator. */
  unsettledGenerations: string[];
}

interface OverdueReserve {
  id: string;
  user_id: string;
  generation_id: string | null;
}

/** How far back the reconciler looks for generation workflows that closed without settling. */
const STOPPED_LOOKBACK_MS = 10 * 60 * 1000;

const ENDED_MESSAGE = {
  abandoned: 'The generation stopped without finishing; its credits were refunded.',
  terminated: 'The generation was stopped by an operator; its credits were refunded.',
};

export function reconciliationActivities(deps: ActivityDeps) {
  /** Releases one reservation and ends its generation as failed, if it has not ended yet. */
  async function release(reserve: OverdueReserve, code: keyof typeof ENDED_MESSAGE, why: string) {
    await withSystemTx(deps.systemDb, async (tx) => {
      // The release checks the reservation belongs to app.user_id: act as its owner.
      await tx.query(`SELECT set_config('app.user_id', $1, true)`, [reserve.user_id]);
      // The same id the generation's own refund would use: whichever comes first, the other is a replay.
      await ledger.release(tx, {
        id: transferId(reserve.generation_id ?? reserve.id, 'release'),
        pendingId: reserve.id,
        reason: `reconciler: ${why}`,
      });
      if (reserve.generation_id) {
        await tx.query(
          `UPDATE generations SET status = 'failed', stage = 'refunded', error_code = $2, error_message = $3,
             updated_at = now(), completed_at = now()
           WHERE id = $1 AND completed_at IS NULL`,
          [reserve.generation_id, code, ENDED_MESSAGE[code]],
        );
      }
    });
  }

  return {
    /**
     * The ledger's safety net, run every minute by a Temporal Schedule: expires lapsed grants,
     * folds commit stripes into their accounts, releases reservations past their deadline (or
     * orphaned by a failed admission) whose workflow is closed or gone, and reports
     * generations that ended without exactly one commit or release.
     */
    async reconcileLedger(): Promise<ReconcileReport> {
      const expiredCredits = await withSystemTx(deps.systemDb, async (tx) => {
        const { rows } = await tx.query<{ n: number }>('SELECT ledger_expire_grants() AS n');
        return rows[0]!.n;
      });

      // Commits are counted in stripe rows off the account row (db/migrations/007): fold them in.
      await withSystemTx(deps.systemDb, (tx) => tx.query('SELECT ledger_fold_commits()'));

      // Housekeeping: idempotency keys are promised for 24 hours; keep them 48.
      await withSystemTx(deps.systemDb, (tx) =>
        tx.query(`DELETE FROM idempotency_keys WHERE created_at < now() - interval '48 hours'`),
      );

      const overdue = await withSystemTx(deps.systemDb, (tx) =>
        tx.query<OverdueReserve>(
          // Past its deadline; or orphaned: admission reserved, then never wrote the generation's row
          // (its workflow gave up), so nothing else will settle it. Both halves range-scan the
          // reserve-deadline index over a bounded window, not the whole history: this runs every
          // minute, so a reservation overdue for 30 days has been looked at 40,000 times already.
          `(SELECT r.id, r.user_id, r.generation_id FROM credit_transfers r
            WHERE r.kind = 'reserve' AND r.expires_at < now() AND r.expires_at > now() - interval '30 days'
              AND NOT EXISTS (SELECT 1 FROM credit_transfers c WHERE c.pending_id = r.id)
            ORDER BY r.expires_at LIMIT 500)
           UNION ALL
           (SELECT r.id, r.user_id, r.generation_id FROM credit_transfers r
            WHERE r.kind = 'reserve' AND r.expires_at >= now() AND r.created_at < now() - interval '1 minute'
              AND r.generation_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.id = r.generation_id)
              AND NOT EXISTS (SELECT 1 FROM credit_transfers c WHERE c.pending_id = r.id)
            LIMIT 500)`,
        ),
      );
      let releasedReservations = 0;
      for (const reserve of overdue.rows) {
        if (reserve.generation_id) {
          const state = await deps.workflowState(generationWorkflowId(reserve.generation_id));
          if (state === 'running') continue; // still working on it: its own refund path will settle it
        }
        await release(reserve, 'abandoned', 'reservation past its deadline and its workflow is closed');
        releasedReservations++;
      }

      // A workflow terminated by an operator (UI, CLI), or stopped by a timeout, runs none of its own
      // code, so nothing refunds it; its reservation's deadline can be 15 minutes away (video). Find
      // those that closed lately with one visibility query, rather than asking about every open
      // reservation; the window spans several runs, so a missed run misses nothing.
      const stopped = await deps.stoppedGenerations(new Date(Date.now() - STOPPED_LOOKBACK_MS));
      if (stopped.length > 0) {
        const held = await withSystemTx(deps.systemDb, (tx) =>
          tx.query<OverdueReserve>(
            `SELECT r.id, r.user_id, r.generation_id FROM credit_transfers r
             WHERE r.generation_id = ANY($1::uuid[]) AND r.kind = 'reserve'
               AND NOT EXISTS (SELECT 1 FROM credit_transfers c WHERE c.pending_id = r.id)`,
            [stopped.map((s) => s.generationId)],
          ),
        );
        const statusOf = new Map(stopped.map((s) => [s.generationId, s.status]));
        for (const reserve of held.rows) {
          const terminated = statusOf.get(reserve.generation_id!) === 'terminated';
          await release(
            reserve,
            terminated ? 'terminated' : 'abandoned',
            `its workflow was ${statusOf.get(reserve.generation_id!)} before it settled`,
          );
          releasedReservations++;
        }
      }

      const unsettled = await withSystemTx(deps.systemDb, (tx) =>
        tx.query<{ id: string; status: string; resolutions: number }>(
          `SELECT g.id, g.status, count(c.id)::int AS resolutions
           FROM generations g
           LEFT JOIN credit_transfers r ON r.generation_id = g.id AND r.kind = 'reserve'
           LEFT JOIN credit_transfers c ON c.pending_id = r.id
           WHERE g.status IN ('succeeded', 'failed', 'canceled')
           GROUP BY g.id, g.status
           HAVING count(c.id) <> 1
              OR bool_or(c.kind = 'commit') IS DISTINCT FROM (g.status = 'succeeded')
           LIMIT 100`,
        ),
      );
      const unsettledGenerations = unsettled.rows.map((r) => r.id);
      metricMeter.createGauge('velro_ledger_unsettled_generations').set(unsettledGenerations.length);
      for (const row of unsettled.rows) {
        log.error('generation is terminal without exactly one commit or release', {
          generationId: row.id,
          status: row.status,
          resolutions: row.resolutions,
        });
      }
      if (expiredCredits || releasedReservations) {
        log.info('ledger reconciled', { expiredCredits, releasedReservations });
      }
      return { expiredCredits, releasedReservations, unsettledGenerations };
    },
  };
}
