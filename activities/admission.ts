import { ApplicationFailure } from '@temporalio/activity';
import { withUserTx } from '../lib/db/pool';
import { insertGeneration } from '../lib/generations/store';
import { LedgerError } from '../lib/ledger/errors';
import { transferId } from '../lib/ledger/ids';
import * as ledger from '../lib/ledger/ledger';
import type { GenerationInput } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

/** How long a reservation may stay pending before the reconciler may release it. */
const RESERVATION_GRACE_MS = 60 * 60 * 1000;

export interface Admitted {
  reservationId: string;
  /** First interval between provider polls (then ×1.5 up to 15 s). */
  pollInitialMs: number;
}

export function admissionActivities({ db, pollInitialMs }: ActivityDeps) {
  return {
    /**
     * Reserves the generation's credits, then creates its row. The reservation goes first, as a
     * statement of its own: on a busy account it is batched with the account's other admissions and
     * holds the account's row lock only for its own commit (db/migrations/007_ledger_hot_path.sql).
     * A refusal (402) leaves nothing behind; a row never exists without its reservation. If the row
     * cannot be written after the reservation was, a retry replays the reservation (same id); if the
     * workflow gives up instead, the reconciler releases the orphaned reservation once the workflow
     * is closed. Also answers the first interval between provider polls, from the worker's own
     * settings: a local activity's result is recorded in the history, so the workflow stays
     * deterministic however the settings change later.
     */
    async admitGeneration(input: GenerationInput): Promise<Admitted> {
      const reservationId = transferId(input.generationId, 'reserve');
      try {
        await ledger.reserve(db, {
          userId: input.userId,
          id: reservationId,
          amount: input.credits,
          generationId: input.generationId,
          deadline: new Date(Date.now() + input.deadlineSeconds * 1000 + RESERVATION_GRACE_MS),
        });
      } catch (err) {
        if (err instanceof LedgerError && err.code === 'insufficient_credits') {
          throw ApplicationFailure.nonRetryable(err.message, 'InsufficientCredits');
        }
        throw err;
      }
      await withUserTx(db, input.userId, (tx) =>
        insertGeneration(tx, {
          id: input.generationId,
          userId: input.userId,
          projectId: input.projectId,
          model: input.model,
          input: input.input,
          credits: input.credits,
          provider: input.provider,
          webhookUrl: input.webhookUrl,
        }),
      );
      return { reservationId, pollInitialMs: pollInitialMs[input.provider] };
    },
  };
}
