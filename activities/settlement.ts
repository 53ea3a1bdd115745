import { withUserTx } from '../lib/db/pool';
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
    async completeGeneration({ userId, generationId }: Settle): Promise<void> {
      await withUserTx(db, userId, async (tx) => {
        await ledger.commit(tx, {
          id: transferId(generationId, 'commit'),
          pendingId: transferId(generationId, 'reserve'),
        });
        await tx.query(
          `UPDATE generations SET status = 'succeeded', stage = 'done', updated_at = now(), completed_at = now()
           WHERE id = $1 AND completed_at IS NULL`,
          [generationId],
        );
      });
    },

    async failGeneration(
      p: Settle & { status: 'failed' | 'canceled'; error: GenerationError },
    ): Promise<void> {
      await withUserTx(db, p.userId, async (tx) => {
        await ledger.release(tx, {
          id: transferId(p.generationId, 'release'),
          pendingId: transferId(p.generationId, 'reserve'),
          reason: `${p.error.code}: ${p.error.message}`.slice(0, 500),
        });
        await tx.query(
          `UPDATE generations SET status = $2, stage = 'refunded', error_code = $3, error_message = $4,
             updated_at = now(), completed_at = now()
           WHERE id = $1 AND completed_at IS NULL`,
          [p.generationId, p.status, p.error.code, p.error.message.slice(0, 1000)],
        );
      });
    },
  };
}
