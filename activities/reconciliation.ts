import { log, metricMeter } from '@temporalio/activity';
import { withSystemTx } from '../lib/db/pool';
import * as store from '../lib/ledger/reconciler-store';
import type { OpenReserve } from '../lib/ledger/reconciler-store';
import { freeLeakedSlots, leakedSlots } from '../lib/capacity/store';
import { purgeUnusedUploads } from '../lib/uploads/store';
import { generationWorkflowId } from '../workflows/definitions';
import type { GenerationInput } from '../workflows/definitions';
import { tellGranted } from './capacity';
import type { ActivityDeps } from './deps';
import { providerFor } from './provider';

export interface ReconcileReport {
  expiredCredits: number;
  releasedReservations: number;
  /** Generations that are terminal without exactly one commit or release: need an operator. */
  unsettledGenerations: string[];
  /** Uploads removed: deleted ones, and unused ones past UPLOAD_RETENTION_HOURS. */
  purgedUploads: number;
  /** Provider slots freed: held or waited for by generations that had ended (terminated ones, say). */
  freedSlots: number;
}

/** How far back the reconciler looks for generation workflows that closed without settling. */
const STOPPED_LOOKBACK_MS = 10 * 60 * 1000;

const ENDED_MESSAGE = {
  abandoned: 'The generation stopped without finishing; its credits were refunded.',
  terminated: 'The generation was stopped by an operator; its credits were refunded.',
};

export function reconciliationActivities(deps: ActivityDeps) {
  /** Releases one reservation and ends its generation as failed, if it has not ended yet. */
  async function release(reserve: OpenReserve, code: keyof typeof ENDED_MESSAGE, why: string) {
    await withSystemTx(deps.systemDb, (tx) =>
      store.releaseAndFail(tx, reserve, { code, message: ENDED_MESSAGE[code], reason: `reconciler: ${why}` }),
    );
  }

  /**
   * Marks the uploads to remove as purged, then deletes their bytes. A delete that fails leaves an
   * object no row names (logged, harmless); the row's purge is what keeps the upload from being used.
   */
  async function purgeUploads(): Promise<number> {
    const purged = await purgeUnusedUploads(deps.systemDb, deps.uploadRetentionHours);
    for (const { id, storageKey } of purged) {
      try {
        await deps.storage.delete(storageKey);
      } catch (err) {
        log.warn('could not delete the bytes of a purged upload', {
          uploadId: id,
          storageKey,
          error: String(err),
        });
      }
    }
    return purged.length;
  }

  /**
   * Frees the slots of generations that ended without giving them back. A job still submitted is
   * cancelled at its provider first (best effort, as the workflow's own refund path does), so the
   * slot does not go to the next generation while the stopped job still runs there.
   */
  async function freeLeakedCapacity(): Promise<number> {
    const leaked = await leakedSlots(deps.systemDb, deps.capacity.limits.scope);
    for (const slot of leaked) {
      if (!slot.providerRequestId) continue;
      try {
        const { provider, job } = providerFor(deps, {
          ...slot,
          input: slot.input as GenerationInput['input'],
        });
        await provider.cancel({ ...job, requestId: slot.providerRequestId });
      } catch (err) {
        log.warn('could not cancel a stopped generation at its provider', {
          generationId: slot.generationId,
          error: String(err),
        });
      }
    }
    const ids = leaked.map((s) => s.generationId);
    if (ids.length > 0) log.warn('freeing slots of generations that had ended', { generationIds: ids });
    const granted = await freeLeakedSlots(deps.systemDb, deps.capacity.limits, ids);
    await tellGranted(deps.capacity, granted);
    return ids.length;
  }

  return {
    /**
     * The ledger's safety net, run every minute by a Temporal Schedule: expires lapsed grants,
     * folds commit stripes into their accounts, releases reservations past their deadline (or
     * orphaned by a failed admission) whose workflow is closed or gone, reports generations that
     * ended without exactly one commit or release, and removes uploads past their retention.
     */
    async reconcileLedger(): Promise<ReconcileReport> {
      const expiredCredits = await withSystemTx(deps.systemDb, store.expireLapsedGrants);
      await withSystemTx(deps.systemDb, store.foldCommitStripes);
      // Housekeeping: idempotency keys are promised for 24 hours; keep them 48.
      await withSystemTx(deps.systemDb, store.deleteStaleIdempotencyKeys);

      // Past its deadline, or orphaned by a failed admission (see overdueReserves).
      const overdue = await withSystemTx(deps.systemDb, store.overdueReserves);
      let releasedReservations = 0;
      for (const reserve of overdue) {
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
        const ids = stopped.map((s) => s.generationId);
        const held = await withSystemTx(deps.systemDb, (tx) => store.openReservesOf(tx, ids));
        const statusOf = new Map(stopped.map((s) => [s.generationId, s.status]));
        for (const reserve of held) {
          const terminated = statusOf.get(reserve.generation_id!) === 'terminated';
          await release(
            reserve,
            terminated ? 'terminated' : 'abandoned',
            `its workflow was ${statusOf.get(reserve.generation_id!)} before it settled`,
          );
          releasedReservations++;
        }
      }

      // After the releases above, which end the generations of terminated workflows: their slots go
      // back, and the pools grant what that frees (also any grant whose word was lost).
      const freedSlots = await freeLeakedCapacity();

      const unsettled = await withSystemTx(deps.systemDb, (tx) => store.unsettledGenerations(tx, 100));
      const unsettledGenerations = unsettled.map((r) => r.id);
      metricMeter.createGauge('velro_ledger_unsettled_generations').set(unsettledGenerations.length);
      for (const row of unsettled) {
        log.error('generation is terminal without exactly one commit or release', {
          generationId: row.id,
          status: row.status,
          resolutions: row.resolutions,
        });
      }
      if (expiredCredits || releasedReservations) {
        log.info('ledger reconciled', { expiredCredits, releasedReservations });
      }
      // Housekeeping: uploads' retention (UPLOAD_RETENTION_HOURS), at most a batch per run.
      const purgedUploads = await purgeUploads();
      if (purgedUploads) log.info('uploads purged', { purgedUploads });
      return {
        expiredCredits,
        releasedReservations,
        unsettledGenerations,
        purgedUploads,
        freedSlots,
      };
    },
  };
}
