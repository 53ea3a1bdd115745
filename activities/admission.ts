import { ApplicationFailure } from '@temporalio/activity';
import { withUserTx } from '../lib/db/pool';
import { insertGeneration } from '../lib/generations/store';
import { LedgerError, type LedgerErrorCode } from '../lib/ledger/errors';
import { transferId } from '../lib/ledger/ids';
import * as ledger from '../lib/ledger/ledger';
import type { GenerationInput } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

/** How long a reservation may stay pending before the reconciler may release it. */
const RESERVATION_GRACE_MS = 60 * 60 * 1000;

/**
 * The ledger's refusals a retry cannot change, as the failure types the workflow answers the API
 * with (workflows/generation.ts, rejection). Team ones (a member past its spend limit, a viewer, a
 * non-member) carry the ledger's DETAIL as their one detail.
 */
const REFUSAL_TYPES: Partial<Record<LedgerErrorCode, string>> = {
  insufficient_credits: 'InsufficientCredits',
  spend_limit_exceeded: 'SpendLimitExceeded',
  forbidden: 'TeamForbidden',
  not_found: 'TeamNotFound',
};

export interface Admitted {
  reservationId: string;
  /** First interval between provider polls (then ×1.5 up to 15 s). */
  pollInitialMs: number;
}

export function admissionActivities({ db, pollInitialMs }: ActivityDeps) {
  return {
    /**
     * Reserves the generation's credits (for a team generation, from the team's account: the
     * database checks membership, role and the member's spend limit in the same statement), then
     * creates its row. The reservation goes first, as a statement of its own: on a busy account it
     * is batched with the account's other admissions and holds the account's row lock only for its
     * own commit (db/migrations/007_ledger_hot_path.sql).
     * A refusal (402) leaves nothing behind; a row never exists without its reservation. If the row
     * cannot be written after the reservation was, a retry replays the reservation (same id); if the
     * workflow gives up instead, the reconciler releases the orphaned reservation once the workflow
     * is closed. Also answers the first interval between provider polls, from the worker's own
     * settings: a local activity's result is recorded in the history, so the workflow stays
     * deterministic however the settings change later.
     */
    async admitGeneration(input: GenerationInput): Promise<Admitted> {
      const reservationId = transferId(input.generationId, 'reserve');
      const teamId = input.teamId ?? null;
      try {
        await ledger.reserve(db, {
          userId: input.userId,
          teamId,
          id: reservationId,
          amount: input.credits,
          generationId: input.generationId,
          deadline: new Date(Date.now() + input.deadlineSeconds * 1000 + RESERVATION_GRACE_MS),
        });
      } catch (err) {
        if (!(err instanceof LedgerError)) throw err;
        const type = teamId || err.code === 'insufficient_credits' ? REFUSAL_TYPES[err.code] : undefined;
        if (type) throw ApplicationFailure.nonRetryable(err.message, type, err.detail);
        throw err;
      }
      await withUserTx(db, input.userId, (tx) =>
        insertGeneration(tx, {
          id: input.generationId,
          userId: input.userId,
          teamId,
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
