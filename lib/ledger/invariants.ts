// Invariant queries shared by `npm run ledger:check` (./check.ts) and the reconciler
// (./reconciler-store.ts): one definition of what "settled" means.

/**
 * One row per terminal generation (succeeded, failed, canceled): its account (its team's for a team
 * generation), its reserves and their resolutions. `commits + releases` counts every resolution of every reserve it has.
 * Columns: id, status, credits, account_id, reserves, reserved, commits, releases.
 */
export const TERMINAL_GENERATION_SETTLEMENTS = `
      SELECT g.id, g.status, g.credits, coalesce(ta.id, pa.id) AS account_id,
             count(DISTINCT r.id) AS reserves,
             coalesce(sum(DISTINCT r.amount) FILTER (WHERE r.id IS NOT NULL), 0) AS reserved,
             count(x.id) FILTER (WHERE x.kind = 'commit') AS commits,
             count(x.id) FILTER (WHERE x.kind = 'release') AS releases
      FROM generations g
      -- A team generation's account is its team's; any other's, its user's.
      LEFT JOIN credit_accounts pa ON g.team_id IS NULL AND pa.user_id = g.user_id
      LEFT JOIN credit_accounts ta ON ta.team_id = g.team_id
      LEFT JOIN credit_transfers r ON r.generation_id = g.id AND r.kind = 'reserve'
      LEFT JOIN credit_transfers x ON x.pending_id = r.id
      WHERE g.status IN ('succeeded', 'failed', 'canceled')
      GROUP BY g.id, pa.id, ta.id`;

/**
 * Over a row of TERMINAL_GENERATION_SETTLEMENTS: the generation ended without exactly one commit (if
 * it succeeded) or exactly one release (if it failed or was canceled).
 */
export const NOT_SETTLED_ONCE = `(commits + releases <> 1 OR (commits > 0) <> (status = 'succeeded'))`;
