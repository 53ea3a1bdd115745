import pg from 'pg';
import { newestFirst, type PageAfter } from '../db/keyset';
import type { Db, Tx } from '../db/pool';
import { asLedgerError, LedgerError } from './errors';
import { UserBatcher, type Outcome } from './batcher';

export interface Transfer {
  id: string;
  kind: 'grant' | 'reserve' | 'commit' | 'release' | 'expire';
  amount: number;
  /** The account's user; on a team account, the member who acted (null on grants and expiries). */
  userId: string | null;
  /** The team whose account this is; null for a personal account. */
  teamId: string | null;
  pendingId: string | null;
  generationId: string | null;
  expiresAt: Date | null;
  reason: string | null;
  createdAt: Date;
}

export interface Balance {
  available: number;
  reserved: number;
  spent: number;
  granted: number;
  expired: number;
}

/** A Transfer's columns, of the row `of` (a table alias or a composite, e.g. `(b.transfer).`). */
const transferColumns = (of = '') =>
  `${of}id, ${of}kind, ${of}amount, ${of}user_id AS "userId", ${of}team_id AS "teamId", ${of}pending_id AS "pendingId",
  ${of}generation_id AS "generationId", ${of}expires_at AS "expiresAt", ${of}reason, ${of}created_at AS "createdAt"`;

/** A transaction already scoped to the user (withUserTx), or the pool for a call that is its own transaction. */
type Runner = Tx | Db;

/** The largest amount the ledger takes (and the SQL functions check again). */
const MAX_AMOUNT = 1_000_000_000_000;

/**
 * Calls a ledger function. `actingAs` (the pool, for a call that is its own transaction): the
 * same statement first scopes itself to that user, `set_config('app.user_id', …, true)`, and hands
 * the function that setting's value, so the function runs only after it (a data dependency; the
 * volatile subquery is not flattened). A velro_app login may act only for app.user_id
 * (db/migrations/008), and this keeps such a call one statement, one round trip.
 */
async function call(q: Runner, sql: string, params: unknown[], actingAs?: string): Promise<Transfer> {
  const fn = sql.slice(0, sql.indexOf('('));
  const scoped = actingAs !== undefined;
  try {
    // Named: each connection parses and plans the call once, not on every call.
    const { rows } = await q.query<Transfer>({
      // (Two texts, two names: a connection keeps each name for one text.)
      name: scoped ? fn : `${fn}_in_tx`,
      text: scoped
        ? `SELECT ${transferColumns('t.')} FROM (SELECT set_config('app.user_id', $${params.length + 1}, true) AS u) s,
           LATERAL ${sql.replace('$USER', 's.u::uuid')} t`
        : `SELECT ${transferColumns()} FROM ${sql}`,
      values: scoped ? [...params, actingAs] : params,
    });
    return rows[0]!;
  } catch (err) {
    throw asLedgerError(err);
  }
}

function checkAmount(amount: number): void {
  // Postgres would refuse 1.5 or 2^63 with a type error; say what is wrong instead.
  if (!Number.isSafeInteger(amount) || amount < 1 || amount > MAX_AMOUNT) {
    throw new LedgerError(
      'invalid_amount',
      `amount must be a whole number from 1 to ${MAX_AMOUNT}, got ${amount}`,
    );
  }
}

/*
 * reserve, commit and release run either inside the caller's transaction (pass the Tx of a
 * withUserTx, so they commit atomically with the caller's other writes, e.g. a generation's
 * status), or as a transaction of their own in a single statement (pass the pool and `userId`):
 * then no client round trip happens while the account's row lock is held, which is what keeps a
 * busy account fast (see db/migrations/007_ledger_hot_path.sql). Reserves made that way are also
 * batched per user when they arrive together (batcher.ts): on a busy account they share one row
 * lock and one commit to disk. (Commits need no batching: they touch no account row.)
 */

interface ReserveItem {
  userId: string;
  id: string;
  amount: number;
  generationId: string | null;
  deadline: Date;
}

/**
 * Reserves `items` for one user in one statement (ledger_reserve_batch: one transaction, a
 * subtransaction per item), answering, in order, each one's transfer or the error that refused it.
 */
async function reserveBatch(db: Db, userId: string, items: ReserveItem[]): Promise<Outcome<Transfer>[]> {
  let rows: (Transfer & { errorCode: string | null; errorMessage: string | null })[];
  try {
    // One statement: it scopes itself to the user first (see call()), then runs the batch.
    ({ rows } = await db.query({
      name: 'ledger_reserve_batch',
      text: `SELECT ${transferColumns('(b.transfer).')}, b.error_code AS "errorCode", b.error_message AS "errorMessage"
             FROM (SELECT set_config('app.user_id', $1, true) AS u) s,
             LATERAL ledger_reserve_batch(s.u::uuid, $2, $3, $4, $5) b ORDER BY b.ordinal`,
      values: [
        userId,
        items.map((i) => i.id),
        items.map((i) => i.amount),
        items.map((i) => i.generationId),
        items.map((i) => i.deadline),
      ],
    }));
  } catch (err) {
    // The statement itself failed (connection, timeout): nothing in it took effect. Callers
    // retry; the transfer ids make a retry a no-op for whatever did.
    throw asLedgerError(err);
  }
  return rows.map(({ errorCode, errorMessage, ...transfer }) =>
    errorCode
      ? { ok: false, error: asLedgerError(Object.assign(new Error(errorMessage ?? ''), { code: errorCode })) }
      : { ok: true, value: transfer },
  );
}

/** Per pool: concurrent one-statement reserves for the same user go together. */
const reserveBatchers = new WeakMap<Db, UserBatcher<ReserveItem, Transfer>>();
function reserveBatcherOf(db: Db): UserBatcher<ReserveItem, Transfer> {
  let batcher = reserveBatchers.get(db);
  if (!batcher) {
    batcher = new UserBatcher<ReserveItem, Transfer>(
      (userId, items) => reserveBatch(db, userId, items),
      (item) => reserveNow(db, item),
    );
    reserveBatchers.set(db, batcher);
  }
  return batcher;
}

interface ActingUser {
  /** Required with the pool; with a user transaction, must be its user if given. */
  userId?: string;
}

/**
 * Reserves from the acting user's account, or, with `teamId`, from that team's account for the
 * acting member (ledger_reserve_team: membership, role and monthly spend limit checked in the same
 * transaction). Team reserves are not batched: they queue on the member's usage row anyway.
 */
export async function reserve(
  q: Runner,
  p: ActingUser & {
    id: string;
    amount: number;
    generationId: string | null;
    deadline: Date;
    teamId?: string | null;
  },
) {
  checkAmount(p.amount);
  if (p.teamId)
    return callActing(
      q,
      'ledger_reserve_team',
      [p.id, p.amount, p.generationId, p.deadline, p.teamId],
      p.userId,
    );
  if (q instanceof pg.Pool && p.userId) return reserveBatcherOf(q).run({ ...p, userId: p.userId });
  return reserveNow(q, p);
}

function reserveNow(
  q: Runner,
  p: ActingUser & { id: string; amount: number; generationId: string | null; deadline: Date },
): Promise<Transfer> {
  return callActing(q, 'ledger_reserve', [p.id, p.amount, p.generationId, p.deadline], p.userId);
}

/**
 * Calls a ledger function whose last argument is the acting user: on the pool with a userId, the
 * statement scopes itself to that user (see call()); in a transaction, the user goes as p_user,
 * which the function checks against the transaction's scope.
 */
function callActing(q: Runner, fn: string, args: unknown[], userId: string | undefined): Promise<Transfer> {
  const given = args.map((_, i) => `$${i + 1}`);
  if (q instanceof pg.Pool && userId)
    return call(q, `${fn}(${[...given, '$USER'].join(', ')})`, args, userId);
  return call(q, `${fn}(${[...given, `$${args.length + 1}`].join(', ')})`, [...args, userId ?? null]);
}

export function commit(q: Runner, p: ActingUser & { id: string; pendingId: string }) {
  return callActing(q, 'ledger_commit', [p.id, p.pendingId], p.userId);
}

export function release(q: Runner, p: ActingUser & { id: string; pendingId: string; reason?: string }) {
  return callActing(q, 'ledger_release', [p.id, p.pendingId, p.reason ?? null], p.userId);
}

/** A grant to a user (`userId`) or to a team (`teamId`): exactly one of them. */
type GrantRequest = { id: string; amount: number; reason: string; expiresAt?: Date | null } & (
  { userId: string; teamId?: undefined } | { teamId: string; userId?: undefined }
);

function grantThrough(system: boolean, tx: Tx, p: GrantRequest) {
  checkAmount(p.amount);
  const fn = p.teamId
    ? system
      ? 'ledger_grant_team'
      : 'admin_grant_team_credits'
    : system
      ? 'ledger_grant'
      : 'admin_grant_credits';
  return call(tx, `${fn}($1, $2, $3, $4, $5)`, [
    p.id,
    p.teamId ?? p.userId,
    p.amount,
    p.reason,
    p.expiresAt ?? null,
  ]);
}

/** A grant, in a system transaction (admin commands, tests). */
export const grant = (tx: Tx, p: GrantRequest) => grantThrough(true, tx, p);

/**
 * A grant made by an admin: in a transaction scoped to the admin (withUserTx), on the velro_app
 * login. The database checks the role of app.user_id (admin_grant_credits, db/migrations/008;
 * admin_grant_team_credits, 009).
 */
export const adminGrant = (tx: Tx, p: GrantRequest) => grantThrough(false, tx, p);

/**
 * An account's balance from credit_balances, with `expired` given by `expiredSql` (over the
 * account row `a`); zeros when the transaction may not see the account.
 */
async function balanceOf(
  tx: Tx,
  owner: 'user_id' | 'team_id',
  id: string,
  expiredSql: string,
): Promise<Balance> {
  const { rows } = await tx.query<Balance>(
    `SELECT a.credits_posted - a.debits_posted - a.debits_pending AS available,
            a.debits_pending AS reserved,
            a.debits_posted - x.expired AS spent,
            a.credits_posted AS granted,
            x.expired
     FROM credit_balances a, LATERAL (SELECT ${expiredSql} AS expired) x
     WHERE a.${owner} = $1`,
    [id],
  );
  return rows[0] ?? { available: 0, reserved: 0, spent: 0, granted: 0, expired: 0 };
}

/** The balance of the user the transaction is scoped to. */
export const balance = (tx: Tx, userId: string) =>
  balanceOf(
    tx,
    'user_id',
    userId,
    `(SELECT coalesce(sum(amount), 0)::bigint FROM credit_transfers
      WHERE user_id = a.user_id AND team_id IS NULL AND kind = 'expire')`,
  );

/** The balance of a team's account, for any member the transaction is scoped to (else zeros). */
export const teamBalance = (tx: Tx, teamId: string) =>
  balanceOf(tx, 'team_id', teamId, 'team_expired_credit(a.team_id)');

/**
 * One page of transfers matching `where` (over `params`), newest first (`limit + 1` rows: see
 * newestFirst). A cursor's time is cut to the millisecond, the API's precision, but a transfer's is
 * not, and the lines one transaction writes share theirs: the page starts after the exact time of
 * the transfer the cursor names, so no line of that millisecond is skipped or shown twice.
 */
function transfersPage(
  tx: Tx,
  where: string,
  params: unknown[],
  page: { after?: PageAfter; limit: number },
): Promise<Transfer[]> {
  const conditions = [where];
  const values = [...params];
  if (page.after) {
    values.push(page.after.createdAt, page.after.id);
    const [at, id] = [`$${values.length - 1}::timestamptz`, `$${values.length}::uuid`];
    conditions.push(
      `(created_at, id) < (coalesce((SELECT c.created_at FROM credit_transfers c WHERE c.id = ${id}), ${at}), ${id})`,
    );
  }
  return newestFirst<Transfer>(tx, {
    select: `SELECT ${transferColumns()} FROM credit_transfers`,
    where: conditions,
    params: values,
    limit: page.limit,
  });
}

/**
 * One page of a team account's transfers, newest first, as the member the transaction is scoped to
 * may see them: row-level security shows an admin or the owner every line, other members only the
 * lines they acted on.
 */
export function listTeamTransfers(
  tx: Tx,
  teamId: string,
  page: { after?: PageAfter; limit: number },
): Promise<Transfer[]> {
  return transfersPage(tx, 'team_id = $1', [teamId], page);
}

/**
 * One page of the personal account's transfers of the user the transaction is scoped to, newest
 * first. Row-level security also shows the lines of its teams; those are the team's
 * (GET /v1/teams/:id/credits/transactions), not listed here.
 */
export function listTransfers(tx: Tx, page: { after?: PageAfter; limit: number }): Promise<Transfer[]> {
  return transfersPage(tx, 'team_id IS NULL', [], page);
}
