import { ApplicationFailure } from '@temporalio/activity';
import { withUserTx } from '../lib/db/pool';
import { LedgerError } from '../lib/ledger/errors';
import { transferId } from '../lib/ledger/ids';
import * as ledger from '../lib/ledger/ledger';
import type { GenerationInput } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

/** How long a reservation may stay pending before the reconciler may release it. */
const RESERVATION_GRACE_MS = 60 * 60 * 1000;

export function admissionActivities({ db }: ActivityDeps) {
  return {
    /**
     * Creates the generation row and reserves its credits in one transaction: either both happen
     * or neither does, so a generation refused for want of credits leaves no row behind.
     */
    async admitGeneration(input: GenerationInput): Promise<{ reservationId: string }> {
      const reservationId = transferId(input.generationId, 'reserve');
      try {
        await withUserTx(db, input.userId, async (tx) => {
          await tx.query(
            `INSERT INTO generations (id, user_id, project_id, model, input, credits, provider, webhook_url)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
            [
              input.generationId,
              input.userId,
              input.projectId,
              input.model,
              input.input,
              input.credits,
              input.provider,
              input.webhookUrl,
            ],
          );
          await ledger.reserve(tx, {
            id: reservationId,
            amount: input.credits,
            generationId: input.generationId,
            deadline: new Date(Date.now() + input.deadlineSeconds * 1000 + RESERVATION_GRACE_MS),
          });
        });
      } catch (err) {
        if (err instanceof LedgerError && err.code === 'insufficient_credits') {
          throw ApplicationFailure.nonRetryable(err.message, 'InsufficientCredits');
        }
        throw err;
      }
      return { reservationId };
    },
  };
}
