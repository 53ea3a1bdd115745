import { withSystemTx, type SystemDb } from '../db/pool';

/** Counted up to this many per state: the gauge says "at least" beyond it, and the scrape stays cheap. */
export const UNSETTLED_COUNT_CAP = 10_000;

export interface UnsettledReservations {
  /** Reserved and unresolved, deadline not yet passed: generations in flight. */
  open: { reservations: number; credits: number };
  /** Unresolved past their deadline (within the last day): the reconciler releases these each minute. */
  overdue: { reservations: number; credits: number };
}

/**
 * Reservations no commit or release has resolved yet, read through the velro_system login. Both
 * halves range-scan the reserve-deadline index over a bounded window (live deadlines; the last day
 * of lapsed ones), as the reconciler's overdueReserves does, with a short statement timeout.
 */
export async function unsettledReservations(db: SystemDb): Promise<UnsettledReservations> {
  return withSystemTx(db, async (tx) => {
    await tx.query("SET LOCAL statement_timeout = '2s'");
    const { rows } = await tx.query<{ state: 'open' | 'overdue'; reservations: number; credits: string }>(
      `SELECT 'open' AS state, count(*)::int AS reservations, coalesce(sum(amount), 0)::text AS credits
       FROM (SELECT r.amount FROM credit_transfers r
             WHERE r.kind = 'reserve' AND r.expires_at >= now()
               AND NOT EXISTS (SELECT 1 FROM credit_transfers c WHERE c.pending_id = r.id)
             LIMIT $1) o
       UNION ALL
       SELECT 'overdue', count(*)::int, coalesce(sum(amount), 0)::text
       FROM (SELECT r.amount FROM credit_transfers r
             WHERE r.kind = 'reserve' AND r.expires_at < now() AND r.expires_at > now() - interval '1 day'
               AND NOT EXISTS (SELECT 1 FROM credit_transfers c WHERE c.pending_id = r.id)
             LIMIT $1) d`,
      [UNSETTLED_COUNT_CAP],
    );
    const of = (state: 'open' | 'overdue') => {
      const row = rows.find((r) => r.state === state);
      return { reservations: row?.reservations ?? 0, credits: Number(row?.credits ?? 0) };
    };
    return { open: of('open'), overdue: of('overdue') };
  });
}
