import { withUserTx } from '../lib/db/pool';
import { markRefunded, markSucceeded } from '../lib/generations/store';
import { transferId } from '../lib/ledger/ids';
import * as ledger from '../lib/ledger/ledger';
import { settlingGeneration } from '../lib/metrics/settlement-store';
import { noWorkerMetrics } from '../lib/metrics/worker-metrics';
import type { GenerationError } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

interface Settle {
  userId: string;
  generationId: string;
}

/** The two ways a generation ends; each moves its credits and sets its status in one transaction. */
export function settlementActivities({ db, metrics = noWorkerMetrics }: ActivityDeps) {
  return {
    /** Charges the generation (commits its reservation) and ends it as `succeeded`. */
    async completeGeneration({ userId, generationId }: Settle): Promise<void> {
      // Undefined when it had ended already (a retried settlement): an outcome is counted once.
      const ending = await withUserTx(db, userId, async (tx) => {
        await ledger.commit(tx, {
          id: transferId(generationId, 'commit'),
          pendingId: transferId(generationId, 'reserve'),
        });
        const ending = await settlingGeneration(tx, generationId);
        await markSucceeded(tx, generationId);
        return ending;
      });
      if (ending) metrics.generationFinished(ending.model, 'succeeded', ending.ageSeconds);
    },

    /**
     * Refunds the generation (releases its reservation) and ends it as `failed` or `canceled`, as
     * `status` says: every way a generation ends without being charged. The name is older than
     * cancels and stays: it is the activity's registered name, recorded in workflow histories.
     */
    async failGeneration(
      p: Settle & { status: 'failed' | 'canceled'; error: GenerationError },
    ): Promise<void> {
      const ending = await withUserTx(db, p.userId, async (tx) => {
        await ledger.release(tx, {
          id: transferId(p.generationId, 'release'),
          pendingId: transferId(p.generationId, 'reserve'),
          reason: `${p.error.code}: ${p.error.message}`.slice(0, 500),
        });
        const ending = await settlingGeneration(tx, p.generationId);
        await markRefunded(tx, p.generationId, p.status, p.error);
        return ending;
      });
      if (ending) metrics.generationFinished(ending.model, p.status, ending.ageSeconds);
    },
  };
}
