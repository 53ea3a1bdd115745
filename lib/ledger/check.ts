import { withSystemTx, type SystemDb } from '../db/pool';
import { NOT_SETTLED_ONCE, TERMINAL_GENERATION_SETTLEMENTS } from './invariants';

/** One way the ledger disagrees with itself. */
export interface LedgerProblem {
  kind: LedgerProblemKind;
  accountId?: string;
  generationId?: string;
  detail: string;
}

export type LedgerProblemKind =
  | 'credits_posted_mismatch'
  | 'debits_posted_mismatch'
  | 'debits_pending_mismatch'
  | 'negative_available'
  | 'lots_mismatch'
  | 'lot_missing'
  | 'lot_remaining_mismatch'
  | 'lot_expiry_blocked'
  | 'allocation_mismatch'
  | 'transfer_link_mismatch'
  | 'owner_mismatch'
  | 'team_usage_mismatch'
  | 'reserve_resolved_twice'
  | 'generation_unreserved'
  | 'generation_reserved_twice'
  | 'generation_unresolved'
  | 'generation_resolved_twice'
  | 'generation_wrong_resolution'
  | 'generation_amount_mismatch'
  | 'slot_held_by_ended_generation';

export interface LedgerReport {
  accounts: number;
  transfers: number;
  problems: LedgerProblem[];
}

/*
 * Each check is one SELECT yielding (kind, account_id, generation_id, detail) rows, one per problem.
 * They all run in one REPEATABLE READ snapshot, so a ledger that is busy while it is checked is seen
 * at a single instant, where every invariant must hold.
 */
const CHECKS: Record<string, string> = {
  // Counters (credit_balances: the account row plus its commit stripes) = sums of transfers;
  // available >= 0; the lots hold exactly the account's expiring credit.
  accounts: `
    WITH t AS (
      SELECT account_id,
             coalesce(sum(amount) FILTER (WHERE kind = 'grant'), 0) AS granted,
             coalesce(sum(amount) FILTER (WHERE kind IN ('commit', 'expire')), 0) AS posted,
             coalesce(sum(amount) FILTER (WHERE kind = 'reserve'), 0) AS reserved
      FROM credit_transfers GROUP BY account_id
    ), resolved AS (
      -- The amount of each resolved reserve, counted on the reserve itself.
      SELECT r.account_id, sum(r.amount) AS amount
      FROM credit_transfers x JOIN credit_transfers r ON r.id = x.pending_id
      WHERE x.kind IN ('commit', 'release')
      GROUP BY r.account_id
    ), lots AS (
      SELECT account_id, sum(remaining) AS remaining FROM credit_lots GROUP BY account_id
    ), s AS (
      SELECT a.account_id AS id, a.credits_posted, a.debits_posted, a.debits_pending, a.available,
             a.expiring_credit,
             coalesce(t.granted, 0) AS granted, coalesce(t.posted, 0) AS posted,
             coalesce(t.reserved, 0) - coalesce(resolved.amount, 0) AS pending,
             coalesce(lots.remaining, 0) AS lots
      FROM credit_balances a
      LEFT JOIN t ON t.account_id = a.account_id
      LEFT JOIN resolved ON resolved.account_id = a.account_id
      LEFT JOIN lots ON lots.account_id = a.account_id
    )
    SELECT 'credits_posted_mismatch' AS kind, id AS account_id, NULL::uuid AS generation_id,
           format('credits_posted %s, but its grants sum to %s', credits_posted, granted) AS detail
    FROM s WHERE credits_posted <> granted
    UNION ALL
    SELECT 'debits_posted_mismatch', id, NULL,
           format('debits_posted %s, but its commits and expiries sum to %s', debits_posted, posted)
    FROM s WHERE debits_posted <> posted
    UNION ALL
    SELECT 'debits_pending_mismatch', id, NULL,
           format('debits_pending %s, but its unresolved reserves sum to %s', debits_pending, pending)
    FROM s WHERE debits_pending <> pending
    UNION ALL
    SELECT 'negative_available', id, NULL, format('available is %s', available)
    FROM s WHERE available < 0
    UNION ALL
    SELECT 'lots_mismatch', id, NULL, format('expiring credit %s, but its lots hold %s', expiring_credit, lots)
    FROM s WHERE expiring_credit <> lots`,

  // Every expiring grant has its lot (and no other grant has one), and each lot holds its grant minus
  // what unreleased reservations drew from it minus what expired from it (a release of credit whose
  // grant has lapsed expires it).
  lots: `
    WITH held AS (
      SELECT al.grant_id, sum(al.amount) AS amount
      FROM credit_allocations al
      WHERE NOT EXISTS (SELECT 1 FROM credit_transfers x WHERE x.pending_id = al.reserve_id AND x.kind = 'release')
      GROUP BY al.grant_id
    ), expired AS (
      SELECT grant_id, sum(amount) AS amount FROM credit_transfers WHERE kind = 'expire' GROUP BY grant_id
    )
    SELECT 'lot_missing' AS kind, g.account_id, NULL::uuid AS generation_id,
           format('grant %s (expires %s) has no lot, a lot it should not have, or a lot of another account or expiry',
                  g.id, coalesce(g.expires_at::text, 'never')) AS detail
    FROM credit_transfers g LEFT JOIN credit_lots l ON l.grant_id = g.id
    WHERE g.kind = 'grant'
      AND CASE WHEN g.expires_at IS NULL THEN l.grant_id IS NOT NULL
               ELSE l.grant_id IS NULL OR l.account_id <> g.account_id OR l.expires_at <> g.expires_at END
    UNION ALL
    SELECT 'lot_remaining_mismatch', l.account_id, NULL,
           format('lot %s: remaining %s, expected %s (granted %s - held by reservations %s - expired %s)',
                  l.grant_id, l.remaining, g.amount - coalesce(h.amount, 0) - coalesce(e.amount, 0),
                  g.amount, coalesce(h.amount, 0), coalesce(e.amount, 0))
    FROM credit_lots l
    JOIN credit_transfers g ON g.id = l.grant_id
    LEFT JOIN held h ON h.grant_id = l.grant_id
    LEFT JOIN expired e ON e.grant_id = l.grant_id
    WHERE l.remaining <> g.amount - coalesce(h.amount, 0) - coalesce(e.amount, 0)
    UNION ALL
    -- A lapsed lot still holding credit although its one expiry transfer already exists: the next
    -- expiry of this account would collide with that transfer's id.
    SELECT 'lot_expiry_blocked', l.account_id, NULL,
           format('lot %s lapsed at %s and was expired, yet holds %s again', l.grant_id, l.expires_at, l.remaining)
    FROM credit_lots l
    WHERE l.remaining > 0 AND l.expires_at <= now()
      AND EXISTS (SELECT 1 FROM credit_transfers e WHERE e.id = ledger_derived_id('expire:' || l.grant_id))
    UNION ALL
    SELECT 'allocation_mismatch', r.account_id, r.generation_id,
           format('reserve %s of %s drew %s from lots', r.id, r.amount, coalesce(sum(al.amount), 0))
    FROM credit_transfers r LEFT JOIN credit_allocations al ON al.reserve_id = r.id
    WHERE r.kind = 'reserve'
    GROUP BY r.id
    -- The part not drawn from lots came from credit that never expires.
    HAVING coalesce(sum(al.amount), 0) > r.amount`,

  // Links between transfers: a resolution matches its reserve (account, amount, acting user), an
  // expiry its grant; and no reserve resolves twice.
  links: `
    SELECT 'transfer_link_mismatch' AS kind, x.account_id, x.generation_id,
           format('%s %s points at %s %s (account %s, amount %s, user %s) but is on account %s for %s, user %s',
                  x.kind, x.id, coalesce(p.kind, 'missing transfer'), coalesce(x.pending_id, x.grant_id),
                  p.account_id, p.amount, coalesce(p.user_id::text, 'none'), x.account_id, x.amount,
                  coalesce(x.user_id::text, 'none')) AS detail
    FROM credit_transfers x
    LEFT JOIN credit_transfers p ON p.id = coalesce(x.pending_id, x.grant_id)
    WHERE (x.kind IN ('commit', 'release')
           AND (p.kind IS DISTINCT FROM 'reserve' OR p.account_id <> x.account_id OR p.amount <> x.amount
                OR p.user_id IS DISTINCT FROM x.user_id))
       OR (x.kind = 'expire' AND (p.kind IS DISTINCT FROM 'grant' OR p.account_id <> x.account_id))
    UNION ALL
    SELECT 'reserve_resolved_twice', min(r.account_id::text)::uuid, min(r.generation_id::text)::uuid,
           format('reserve %s resolved %s times: %s', x.pending_id, count(*), string_agg(x.kind || ' ' || x.id, ', '))
    FROM credit_transfers x LEFT JOIN credit_transfers r ON r.id = x.pending_id
    WHERE x.pending_id IS NOT NULL
    GROUP BY x.pending_id
    HAVING count(*) > 1`,

  // Owners: a row of a personal account names that account's user and no team; a row of a team
  // account names that team (its transfers also the member who acted: reserves and their
  // resolutions always have one). Transfers, lots, allocations and commit stripes alike.
  owners: `
    SELECT 'owner_mismatch' AS kind, t.account_id, t.generation_id,
           format('%s %s has user %s, team %s, but sits on %s', t.kind, t.id,
                  coalesce(t.user_id::text, 'none'), coalesce(t.team_id::text, 'none'),
                  CASE WHEN a.id IS NULL THEN 'no account'
                       WHEN a.team_id IS NULL THEN 'the account of user ' || a.user_id
                       ELSE 'the account of team ' || a.team_id END) AS detail
    FROM credit_transfers t LEFT JOIN credit_accounts a ON a.id = t.account_id
    WHERE CASE WHEN a.id IS NULL THEN true
               WHEN a.team_id IS NULL THEN t.user_id IS DISTINCT FROM a.user_id OR t.team_id IS NOT NULL
               ELSE t.team_id IS DISTINCT FROM a.team_id
                    OR (t.kind IN ('reserve', 'commit', 'release') AND t.user_id IS NULL) END
    UNION ALL
    SELECT 'owner_mismatch', a.id, NULL,
           format('%s %s has user %s, team %s; its account user %s, team %s', o.what, o.id,
                  coalesce(o.user_id::text, 'none'), coalesce(o.team_id::text, 'none'),
                  coalesce(a.user_id::text, 'none'), coalesce(a.team_id::text, 'none'))
    FROM (SELECT 'lot' AS what, grant_id::text AS id, account_id, user_id, team_id FROM credit_lots
          UNION ALL
          SELECT 'allocation', al.reserve_id || ' of ' || al.grant_id, r.account_id, al.user_id, al.team_id
          FROM credit_allocations al JOIN credit_transfers r ON r.id = al.reserve_id
          UNION ALL
          SELECT 'commit stripe', stripe::text, account_id, user_id, team_id FROM credit_commit_stripes) o
    JOIN credit_accounts a ON a.id = o.account_id
    WHERE (o.user_id, o.team_id) IS DISTINCT FROM (a.user_id, a.team_id)`,

  // Spend limits: each member's monthly usage of a team account (team_member_usage.used, what the
  // limit is checked against) = its reserves on that account made that month (UTC), minus those
  // released (a commit leaves the spend counted).
  usage: `
    WITH expected AS (
      SELECT team_id, user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, sum(amount) AS used
      FROM (SELECT r.team_id, r.user_id, r.created_at, r.amount FROM credit_transfers r
            WHERE r.kind = 'reserve' AND r.team_id IS NOT NULL
            UNION ALL
            -- A release gives its reserve's amount back, in its reserve's month. (From the release to
            -- its reserve by primary key: a plan that stays cheap whatever the table's statistics.)
            SELECT r.team_id, r.user_id, r.created_at, -r.amount
            FROM credit_transfers x JOIN credit_transfers r ON r.id = x.pending_id
            WHERE x.kind = 'release' AND r.team_id IS NOT NULL) lines
      GROUP BY 1, 2, 3
    )
    SELECT 'team_usage_mismatch' AS kind, a.id AS account_id, NULL::uuid AS generation_id,
           format('team %s, member %s, %s: used %s, but the reserves that month minus their releases sum to %s',
                  s.team_id, s.user_id, to_char(s.month, 'YYYY-MM'), s.used, s.expected) AS detail
    FROM (SELECT team_id, user_id, month, coalesce(u.used, 0) AS used, coalesce(e.used, 0) AS expected
          FROM team_member_usage u FULL JOIN expected e USING (team_id, user_id, month)) s
    LEFT JOIN credit_accounts a ON a.team_id = s.team_id
    WHERE s.used <> s.expected`,

  // A terminal generation has exactly one reserve and exactly one resolution of it: a commit if it
  // succeeded, a release if it failed or was canceled. (A generation refused at admission has no row.)
  generations: `
    WITH g AS (${TERMINAL_GENERATION_SETTLEMENTS}
    )
    SELECT CASE
             WHEN reserves = 0 THEN 'generation_unreserved'
             WHEN reserves > 1 THEN 'generation_reserved_twice'
             WHEN commits + releases = 0 THEN 'generation_unresolved'
             WHEN commits + releases > 1 THEN 'generation_resolved_twice'
             ELSE 'generation_wrong_resolution'
           END AS kind,
           account_id, id AS generation_id,
           format('%s generation has %s reserve(s), %s commit(s), %s release(s)', status, reserves, commits, releases) AS detail
    FROM g
    WHERE reserves <> 1 OR ${NOT_SETTLED_ONCE}
    UNION ALL
    SELECT 'generation_amount_mismatch', account_id, id,
           format('generation costs %s credits, but its reserve is for %s', credits, reserved)
    FROM g WHERE reserves = 1 AND reserved <> credits`,
  // Provider capacity (db/migrations/012_capacity.sql): a generation gives its slot back (or leaves
  // the queue) before it is settled, so an ended one holds none; the reconciler frees any it finds.
  capacity: `
    SELECT 'slot_held_by_ended_generation' AS kind,
           NULL::uuid AS account_id, g.id AS generation_id,
           format('generation is %s, but still %s a %s slot (scope %s)', g.status,
                  CASE WHEN r.granted_at IS NULL THEN 'waits for' ELSE 'holds' END, r.provider, r.scope) AS detail
    FROM capacity_requests r JOIN generations g ON g.id = r.generation_id
    WHERE r.released_at IS NULL AND g.status IN ('succeeded', 'failed', 'canceled')`,
};

interface ProblemRow {
  kind: LedgerProblemKind;
  account_id: string | null;
  generation_id: string | null;
  detail: string;
}

/**
 * Verifies the whole ledger against its own history, as velro_system, at one consistent instant.
 * Returns the counts it looked at and every problem it found (none on a healthy ledger).
 */
export async function checkLedgerReport(db: SystemDb): Promise<LedgerReport> {
  return withSystemTx(db, async (tx) => {
    // Allowed here: the transaction's first statement.
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const problems: LedgerProblem[] = [];
    for (const sql of Object.values(CHECKS)) {
      const { rows } = await tx.query<ProblemRow>(sql);
      for (const r of rows) {
        problems.push({
          kind: r.kind,
          ...(r.account_id ? { accountId: r.account_id } : {}),
          ...(r.generation_id ? { generationId: r.generation_id } : {}),
          detail: r.detail,
        });
      }
    }
    const { rows } = await tx.query<{ accounts: number; transfers: number }>(
      `SELECT (SELECT count(*) FROM credit_accounts)::int AS accounts,
              (SELECT count(*) FROM credit_transfers)::int AS transfers`,
    );
    return { accounts: rows[0]!.accounts, transfers: rows[0]!.transfers, problems };
  });
}

/** Every way the ledger disagrees with itself; an empty list means it is sound. */
export async function checkLedger(db: SystemDb): Promise<LedgerProblem[]> {
  return (await checkLedgerReport(db)).problems;
}
