// GET /v1/teams/:id/usage: what the team's members reserved, spent and got refunded, per model, in
// one calendar month (UTC), from the team account's reservations made in that month.
import type { Tx } from '../db/pool';

export interface UsageRow {
  userId: string;
  /** The generation's model; null for a reservation whose generation was never written. */
  model: string | null;
  count: number;
  /** Credits of reservations still open. */
  reserved: number;
  /** Credits of reservations committed. */
  spent: number;
  /** Credits of reservations released. */
  refunded: number;
}

/** The current UTC month, `YYYY-MM`. */
export const currentMonth = (now = new Date()) => now.toISOString().slice(0, 7);

/**
 * The usage of team `teamId` in `month` (`YYYY-MM`), per member and model, as the member the
 * transaction is scoped to may see it: row-level security on credit_transfers shows an admin or
 * the owner every member's reservations, others only their own.
 */
export async function teamUsage(tx: Tx, teamId: string, month: string): Promise<UsageRow[]> {
  const { rows } = await tx.query<UsageRow>(
    `SELECT r.user_id AS "userId", g.model, count(*)::int AS count,
            coalesce(sum(r.amount) FILTER (WHERE x.kind IS NULL), 0)::bigint AS reserved,
            coalesce(sum(r.amount) FILTER (WHERE x.kind = 'commit'), 0)::bigint AS spent,
            coalesce(sum(r.amount) FILTER (WHERE x.kind = 'release'), 0)::bigint AS refunded
     FROM credit_transfers r
     LEFT JOIN generations g ON g.id = r.generation_id
     -- A reserve is resolved at most once (a unique index on pending_id).
     LEFT JOIN credit_transfers x ON x.pending_id = r.id
     CROSS JOIN (SELECT ($2::text || '-01')::timestamp AS start) m
     WHERE r.team_id = $1 AND r.kind = 'reserve'
       AND r.created_at >= m.start AT TIME ZONE 'UTC'
       AND r.created_at < (m.start + interval '1 month') AT TIME ZONE 'UTC'
     GROUP BY r.user_id, g.model
     ORDER BY r.user_id, g.model NULLS LAST`,
    [teamId, month],
  );
  return rows;
}
