import { withUserTx } from '../lib/db/pool';
import { markRefunded, markSucceeded } from '../lib/generations/store';
import { transferId } from '../lib/ledger/ids';
import * as ledger from '../lib/ledger/ledger';
import type { GenerationError } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

interface Settle {
  userId: string;
  generationId: string;
}

/** The two ways a generation ends; each moves its credits and sets its status in one transaction. */
export function settlementActivities({ db }: ActivityDeps) {
  return {
    /** Charges the generation (commits its reservation) and ends it as `succeeded`. */
    async completeGeneration({ userId, generationId }: Settle): Promise<void> {
      await withUserTx(db, userId, async (tx) => {
        await ledger.commit(tx, {
          id: transferId(generationId, 'commit'),
          pendingId: transferId(generationId, 'reserve'),
        });
        await markSucceeded(tx, generationId);
      });
    },

    /**
     * Refunds the generation (releases its reservation) and ends it as `failed` or `canceled`, as
     * `status` says: every way a generation ends without being charged. The name is older than
     * cancels and stays: it is the activity's registered name, recorded in workflow histories.
     */
    async failGeneration(
      p: Settle & { status: 'failed' | 'canceled'; error: GenerationError },
    ): Promise<void> {
      await withUserTx(db, p.userId, async (tx) => {
        await ledger.release(tx, {
          id: transferId(p.generationId, 'release'),
          pendingId: transferId(p.generationId, 'reserve'),
          reason: `${p.error.code}: ${p.error.message}`.slice(0, 500),
        });
        await markRefunded(tx, p.generationId, p.status, p.error);
      });
    },
  };
}
