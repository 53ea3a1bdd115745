// The reconciler's SQL (activities/reconciliation.ts decides; these read and write). Every function
// runs in a velro_system transaction (withSystemTx).
import type { Tx } from '../db/pool';
import { transferId } from './ids';
import { NOT_SETTLED_ONCE, TERMINAL_GENERATION_SETTLEMENTS } from './invariants';
import * as ledger from './ledger';

/** A reservation nothing has resolved yet. */
export interface OpenReserve {
  id: string;
  user_id: string;
  generation_id: string | null;
}

/** Expires the unspent remainder of every lapsed grant; returns the credits expired. */
export async function expireLapsedGrants(tx: Tx): Promise<number> {
  const { rows } = await tx.query<{ n: number }>('SELECT ledger_expire_grants() AS n');
  return rows[0]!.n;
}

/** Commits are counted in stripe rows off the account row (db/migrations/007): fold them in. */
export async function foldCommitStripes(tx: Tx): Promise<void> {
  await tx.query('SELECT ledger_fold_commits()');
}

/** Idempotency keys are promised for 24 hours; keep them 48. */
export async function deleteStaleIdempotencyKeys(tx: Tx): Promise<void> {
  await tx.query(`DELETE FROM idempotency_keys WHERE created_at < now() - interval '48 hours'`);
}

/**
 * Open reservations past their deadline; or orphaned: admission reserved, then never wrote the
 * generation's row (its workflow gave up), so nothing else will settle it. At most 500 of each.
 */
export async function overdueReserves(tx: Tx): Promise<OpenReserve[]> {
  const { rows } = await tx.query<OpenReserve>(
    // Both halves range-scan the reserve-deadline index over a bounded window, not the whole
    // history: this runs every minute, so a reservation overdue for 30 days has been looked at
    // 40,000 times already.
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
  );
  return rows;
}

/** The open reservations of these generations. */
export async function openReservesOf(tx: Tx, generationIds: string[]): Promise<OpenReserve[]> {
  const { rows } = await tx.query<OpenReserve>(
    `SELECT r.id, r.user_id, r.generation_id FROM credit_transfers r
     WHERE r.generation_id = ANY($1::uuid[]) AND r.kind = 'reserve'
       AND NOT EXISTS (SELECT 1 FROM credit_transfers c WHERE c.pending_id = r.id)`,
    [generationIds],
  );
  return rows;
}

/** Releases one reservation and ends its generation as failed (`code`, `message`), if it has not ended yet. */
export async function releaseAndFail(
  tx: Tx,
  reserve: OpenReserve,
  failure: { code: string; message: string; reason: string },
): Promise<void> {
  // The release checks the reservation belongs to app.user_id: act as its owner.
  await tx.query(`SELECT set_config('app.user_id', $1, true)`, [reserve.user_id]);
  // The same id the generation's own refund would use: whichever comes first, the other is a replay.
  await ledger.release(tx, {
    id: transferId(reserve.generation_id ?? reserve.id, 'release'),
    pendingId: reserve.id,
    reason: failure.reason,
  });
  if (reserve.generation_id) {
    await tx.query(
      `UPDATE generations SET status = 'failed', stage = 'refunded', error_code = $2, error_message = $3,
         updated_at = now(), completed_at = now()
       WHERE id = $1 AND completed_at IS NULL`,
      [reserve.generation_id, failure.code, failure.message],
    );
  }
}

export interface UnsettledGeneration {
  id: string;
  status: string;
  /** Commits and releases of its reserves, in all. */
  resolutions: number;
}

/** Terminal generations without exactly one commit or release (the ledger check's invariant). */
export async function unsettledGenerations(tx: Tx, limit = 100): Promise<UnsettledGeneration[]> {
  const { rows } = await tx.query<UnsettledGeneration>(
    `WITH g AS (${TERMINAL_GENERATION_SETTLEMENTS}
     )
     SELECT id, status, (commits + releases)::int AS resolutions
     FROM g
     WHERE ${NOT_SETTLED_ONCE}
     LIMIT $1`,
    [limit],
  );
  return rows;
}
