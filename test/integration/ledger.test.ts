import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx, withUserTx, type Db } from '../../lib/db/pool';
import { checkLedger, type LedgerProblem } from '../../lib/ledger/check';
import { LedgerError } from '../../lib/ledger/errors';
import { derivedUuid } from '../../lib/ledger/ids';
import * as ledger from '../../lib/ledger/ledger';
import { createUser, testConfig, testDb, testStack, systemDb } from '../support/context';
import { runScript } from '../support/scripts';

const DAY_MS = 24 * 3600 * 1000;

let db: Db;
/** The test stack's owner connection (superuser `postgres`): bypasses RLS, can disable triggers. */
let owner: pg.Client;

beforeAll(async () => {
  db = testDb(testConfig());
  owner = new pg.Client({ connectionString: testStack().databaseUrl });
  await owner.connect();
});
afterAll(async () => {
  await owner?.end();
  await db?.end();
});

// --- helpers ------------------------------------------------------------------------------------

async function newUser(credits = 0) {
  const u = await createUser(db, credits);
  const { rows } = await owner.query<{ id: string }>('SELECT id FROM credit_accounts WHERE user_id = $1', [
    u.userId,
  ]);
  return { ...u, accountId: rows[0]!.id };
}

const grant = (
  userId: string,
  amount: number,
  extra: { id?: string; reason?: string; expiresAt?: Date } = {},
) =>
  withSystemTx(systemDb(), (tx) =>
    ledger.grant(tx, {
      id: extra.id ?? randomUUID(),
      userId,
      amount,
      reason: extra.reason ?? 'test',
      expiresAt: extra.expiresAt,
    }),
  );

const reserve = (
  userId: string,
  amount: number,
  id: string = randomUUID(),
  generationId: string | null = null,
) =>
  withUserTx(db, userId, (tx) =>
    ledger.reserve(tx, { id, amount, generationId, deadline: new Date(Date.now() + DAY_MS) }),
  );

const commit = (userId: string, pendingId: string, id: string = randomUUID()) =>
  withUserTx(db, userId, (tx) => ledger.commit(tx, { id, pendingId }));

const release = (userId: string, pendingId: string, id: string = randomUUID()) =>
  withUserTx(db, userId, (tx) => ledger.release(tx, { id, pendingId, reason: 'test' }));

const balance = (userId: string) => withUserTx(db, userId, (tx) => ledger.balance(tx, userId));

async function transfers(accountId: string) {
  const { rows } = await owner.query<{ id: string; kind: string; amount: number; grant_id: string | null }>(
    `SELECT id, kind, amount::int, grant_id FROM credit_transfers WHERE account_id = $1 ORDER BY created_at, kind`,
    [accountId],
  );
  return rows;
}

async function lots(accountId: string): Promise<Record<string, number>> {
  const { rows } = await owner.query<{ grant_id: string; remaining: number }>(
    'SELECT grant_id, remaining::int FROM credit_lots WHERE account_id = $1',
    [accountId],
  );
  return Object.fromEntries(rows.map((r) => [r.grant_id, r.remaining]));
}

async function allocations(reserveId: string): Promise<Record<string, number>> {
  const { rows } = await owner.query<{ grant_id: string; amount: number }>(
    'SELECT grant_id, amount::int FROM credit_allocations WHERE reserve_id = $1',
    [reserveId],
  );
  return Object.fromEntries(rows.map((r) => [r.grant_id, r.amount]));
}

/** The ledger is shared with other test files running alongside: look at our own accounts only. */
async function problemsOf(...accountIds: string[]): Promise<LedgerProblem[]> {
  return (await checkLedger(systemDb())).filter((p) => p.accountId && accountIds.includes(p.accountId));
}

/** Resolves to the error `p` rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

async function ledgerCode(p: Promise<unknown>): Promise<string> {
  const err = await failure(p);
  expect(err).toBeInstanceOf(LedgerError);
  return (err as LedgerError).code;
}

/** Accounts whose history the tests below keep sound; checked together at the end. */
const cleanAccounts: string[] = [];

// --- idempotency --------------------------------------------------------------------------------

describe('replays', () => {
  it('return the first result for grant, reserve, commit and release; the same id with other fields conflicts', async () => {
    const u = await newUser();
    cleanAccounts.push(u.accountId);
    const gid = randomUUID();
    const g1 = await grant(u.userId, 500, { id: gid, reason: 'welcome' });
    const g2 = await grant(u.userId, 500, { id: gid, reason: 'welcome' });
    expect(g2).toEqual(g1);
    expect(await ledgerCode(grant(u.userId, 501, { id: gid, reason: 'welcome' }))).toBe('transfer_conflict');
    expect(await ledgerCode(grant(u.userId, 500, { id: gid, reason: 'other' }))).toBe('transfer_conflict');

    const rid = randomUUID();
    const gen = randomUUID();
    const r1 = await reserve(u.userId, 100, rid, gen);
    expect(await reserve(u.userId, 100, rid, gen)).toEqual(r1);
    expect(await ledgerCode(reserve(u.userId, 101, rid, gen))).toBe('transfer_conflict');
    expect(await ledgerCode(reserve(u.userId, 100, rid, randomUUID()))).toBe('transfer_conflict');
    // A grant id reused as a reserve id (and the other way round) is a conflict too.
    expect(await ledgerCode(reserve(u.userId, 500, gid))).toBe('transfer_conflict');
    expect(await ledgerCode(grant(u.userId, 100, { id: rid }))).toBe('transfer_conflict');

    const cid = randomUUID();
    const c1 = await commit(u.userId, rid, cid);
    expect(await commit(u.userId, rid, cid)).toEqual(c1);
    expect(c1).toMatchObject({ kind: 'commit', amount: 100, pendingId: rid, generationId: gen });

    const rid2 = randomUUID();
    await reserve(u.userId, 50, rid2);
    const lid = randomUUID();
    const l1 = await release(u.userId, rid2, lid);
    expect(await release(u.userId, rid2, lid)).toEqual(l1);
    // The same id used for the other resolution of the same reservation: a conflict, not a replay.
    expect(await ledgerCode(commit(u.userId, rid2, lid))).toBe('transfer_conflict');

    expect(await balance(u.userId)).toEqual({
      available: 400,
      reserved: 0,
      spent: 100,
      granted: 500,
      expired: 0,
    });
    expect((await transfers(u.accountId)).map((t) => t.kind).sort()).toEqual(
      ['commit', 'grant', 'release', 'reserve', 'reserve'].sort(),
    );
  });

  it('refuse a second, different resolution: commit after release and release after commit', async () => {
    const u = await newUser(300);
    cleanAccounts.push(u.accountId);
    const a = await reserve(u.userId, 100);
    await release(u.userId, a.id);
    expect(await ledgerCode(commit(u.userId, a.id))).toBe('already_resolved');
    const b = await reserve(u.userId, 100);
    await commit(u.userId, b.id);
    expect(await ledgerCode(release(u.userId, b.id))).toBe('already_resolved');
    // ...and a second commit under a new id is no replay either.
    expect(await ledgerCode(commit(u.userId, b.id))).toBe('already_resolved');
    expect(await balance(u.userId)).toMatchObject({ available: 200, reserved: 0, spent: 100 });
  });
});

// --- amounts and refusals -----------------------------------------------------------------------

describe('refusals', () => {
  it('refuse zero, negative and huge amounts with invalid_amount, for grants and reservations', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    for (const amount of [0, -1, -100, 1e12 + 1, 1e15]) {
      expect(await ledgerCode(grant(u.userId, amount)), `grant ${amount}`).toBe('invalid_amount');
      expect(await ledgerCode(reserve(u.userId, amount)), `reserve ${amount}`).toBe('invalid_amount');
    }
    // The ceiling itself is allowed.
    await grant(u.userId, 1e12);
    expect(await balance(u.userId)).toMatchObject({ available: 1e12 + 100 });
  });

  it('refuse fractional, non-finite and beyond-bigint amounts with invalid_amount, before Postgres sees them', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    // Without the check, node-postgres would send "1.5" as text and Postgres answer a raw 22P02
    // (2^63: 22003), not a refusal a client can act on. Nothing may round, either:
    const { rows } = await owner.query<{ rounded: number }>('SELECT 1.5::numeric::bigint AS rounded');
    expect(rows[0]!.rounded).toBe(2);
    for (const amount of [1.5, 0.5, 99.9, 2 ** 63, 1e21, NaN, Infinity, 2 ** 53]) {
      const g = await failure(grant(u.userId, amount));
      expect(g, String(amount)).toBeInstanceOf(LedgerError);
      expect((g as LedgerError).code).toBe('invalid_amount');
      expect(await ledgerCode(reserve(u.userId, amount))).toBe('invalid_amount');
    }
    // The SQL functions refuse them too: a numeric argument does not even resolve to the function
    // (no implicit numeric -> bigint), and a bigint beyond the bound is refused with VL400.
    const literal = await failure(
      owner.query(`SELECT ledger_grant(gen_random_uuid(), $1::uuid, 1.5, 'x')`, [u.userId]),
    );
    expect(literal.code).toBe('42883');
    const huge = await failure(
      owner.query(`SELECT ledger_grant(gen_random_uuid(), $1::uuid, 1000000000001, 'x')`, [u.userId]),
    );
    expect(huge.code).toBe('VL400');
    expect(await balance(u.userId)).toMatchObject({ available: 100, granted: 100 });
    expect(await transfers(u.accountId)).toHaveLength(1);
  });

  it('answer not_found for an unknown user, reservation or account', async () => {
    expect(await ledgerCode(grant(randomUUID(), 10))).toBe('not_found');
    // A user id with no account behind it, as the app role.
    expect(await ledgerCode(reserve(randomUUID(), 10))).toBe('not_found');
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    expect(await ledgerCode(commit(u.userId, randomUUID()))).toBe('not_found');
    expect(await ledgerCode(release(u.userId, randomUUID()))).toBe('not_found');
    // Another user's reservation is invisible too.
    const other = await newUser(100);
    cleanAccounts.push(other.accountId);
    const theirs = await reserve(other.userId, 10);
    expect(await ledgerCode(commit(u.userId, theirs.id))).toBe('not_found');
    await release(other.userId, theirs.id);
  });

  it('refuse an overdraft with insufficient_credits and move nothing', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    const before = {
      balance: await balance(u.userId),
      lots: await lots(u.accountId),
      transfers: await transfers(u.accountId),
    };
    expect(await ledgerCode(reserve(u.userId, 101))).toBe('insufficient_credits');
    const held = await reserve(u.userId, 60);
    expect(await ledgerCode(reserve(u.userId, 41))).toBe('insufficient_credits');
    await release(u.userId, held.id);
    expect(await balance(u.userId)).toEqual(before.balance);
    expect(await lots(u.accountId)).toEqual(before.lots);
    expect((await transfers(u.accountId)).map((t) => t.kind)).toEqual(['grant', 'reserve', 'release']);
  });
});

// --- who may write ------------------------------------------------------------------------------

describe('privileges', () => {
  it('deny the app role any direct write to the ledger tables', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    for (const sql of [
      'UPDATE credit_transfers SET amount = amount + 1',
      'DELETE FROM credit_transfers',
      'UPDATE credit_accounts SET credits_posted = credits_posted + 1000',
      'UPDATE credit_lots SET remaining = remaining + 1000',
      `INSERT INTO credit_transfers (id, account_id, user_id, kind, amount) VALUES (gen_random_uuid(), '${u.accountId}', '${u.userId}', 'grant', 5)`,
    ]) {
      const err = await failure(withUserTx(db, u.userId, (tx) => tx.query(sql)));
      expect(err.code, sql).toBe('42501');
      expect(err.message, sql).toMatch(/permission denied/);
    }
    expect(await balance(u.userId)).toMatchObject({ available: 100, granted: 100 });
  });

  it('keep transfers append-only for velro_system (no privilege) and for the owner (trigger)', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    for (const sql of [
      'UPDATE credit_transfers SET amount = amount + 1 WHERE account_id = $1',
      'DELETE FROM credit_transfers WHERE account_id = $1',
    ]) {
      const err = await failure(withSystemTx(systemDb(), (tx) => tx.query(sql, [u.accountId])));
      expect(err.code, sql).toBe('42501');
      // The owner (here a superuser) has every privilege: the trigger is what stops it.
      const byOwner = await failure(owner.query(sql, [u.accountId]));
      expect(byOwner.code, sql).toBe('42501');
      expect(byOwner.message, sql).toContain('credit_transfers is append-only');
    }
    expect(await transfers(u.accountId)).toEqual([expect.objectContaining({ kind: 'grant', amount: 100 })]);
  });
});

// --- concurrency --------------------------------------------------------------------------------

describe('a pending transfer racing commit against release', () => {
  it('resolves exactly once, 20 times out of 20', async () => {
    const u = await newUser(20 * 10);
    cleanAccounts.push(u.accountId);
    let commits = 0;
    for (let i = 0; i < 20; i++) {
      const r = await reserve(u.userId, 10);
      const outcomes = await Promise.allSettled([commit(u.userId, r.id), release(u.userId, r.id)]);
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(won, `round ${i}`).toHaveLength(1);
      expect(lost[0]!.reason, `round ${i}`).toBeInstanceOf(LedgerError);
      expect((lost[0]!.reason as LedgerError).code).toBe('already_resolved');
      if (outcomes[0]!.status === 'fulfilled') commits++;
    }
    const { rows } = await owner.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM credit_transfers WHERE account_id = $1 AND kind IN ('commit', 'release')`,
      [u.accountId],
    );
    expect(rows[0]!.n).toBe(20);
    expect(await balance(u.userId)).toMatchObject({
      reserved: 0,
      spent: commits * 10,
      available: 200 - commits * 10,
    });
  });
});

// --- grant expiry -------------------------------------------------------------------------------

describe('grant expiry', () => {
  it('spends the expiring grant first, expires its unspent remainder, and expires (not refunds) a release drawn from it', async () => {
    const u = await newUser();
    cleanAccounts.push(u.accountId);
    const lasting = await grant(u.userId, 100, { reason: 'lasting' });
    const expiresAt = new Date(Date.now() + 2500);
    const expiring = await grant(u.userId, 100, { reason: 'expiring', expiresAt });

    const r1 = await reserve(u.userId, 30);
    expect(await allocations(r1.id)).toEqual({ [expiring.id]: 30 });
    await commit(u.userId, r1.id);
    const r2 = await reserve(u.userId, 50);
    expect(await allocations(r2.id)).toEqual({ [expiring.id]: 50 });
    // Spans both: the rest of the expiring lot, then credit that never expires (which has no lot).
    const r3 = await reserve(u.userId, 40);
    expect(await allocations(r3.id)).toEqual({ [expiring.id]: 20 });
    await release(u.userId, r3.id);
    expect(await lots(u.accountId)).toEqual({ [expiring.id]: 20 });
    expect(lasting.expiresAt).toBeNull();

    await sleep(expiresAt.getTime() - Date.now() + 200);
    const swept = await withSystemTx(
      systemDb(),
      async (tx) => (await tx.query<{ n: number }>('SELECT ledger_expire_grants() AS n')).rows[0]!.n,
    );
    expect(swept).toBeGreaterThanOrEqual(20); // other test files' lapsed grants may be swept too
    const expires = (await transfers(u.accountId)).filter((t) => t.kind === 'expire');
    expect(expires).toEqual([expect.objectContaining({ amount: 20, grant_id: expiring.id })]);
    expect(await balance(u.userId)).toEqual({
      available: 100,
      reserved: 50,
      spent: 30,
      granted: 200,
      expired: 20,
    });

    // The pending 50 came from the lapsed grant: releasing it expires those credits at once.
    await release(u.userId, r2.id);
    expect(await balance(u.userId)).toEqual({
      available: 100,
      reserved: 0,
      spent: 30,
      granted: 200,
      expired: 70,
    });
    expect(await lots(u.accountId)).toEqual({ [expiring.id]: 0 });
    const after = (await transfers(u.accountId)).filter((t) => t.kind === 'expire');
    expect(after.map((t) => t.amount).sort()).toEqual([20, 50]);

    // A second sweep finds nothing more here; what is left is the lasting grant, all of it.
    await withSystemTx(systemDb(), (tx) => tx.query('SELECT ledger_expire_grants()'));
    expect((await transfers(u.accountId)).filter((t) => t.kind === 'expire')).toHaveLength(2);
    const all = await reserve(u.userId, 100);
    expect(await allocations(all.id)).toEqual({}); // credit that never expires: no lot to draw from
    expect(await ledgerCode(reserve(u.userId, 1))).toBe('insufficient_credits');
    await commit(u.userId, all.id);
    expect(await problemsOf(u.accountId)).toEqual([]);
  });

  it('expires lapsed lots lazily inside a reservation, and not at all when the reservation is refused', async () => {
    const u = await newUser();
    cleanAccounts.push(u.accountId);
    await grant(u.userId, 10, { reason: 'lasting' });
    const expiresAt = new Date(Date.now() + 1500);
    const expiring = await grant(u.userId, 50, { reason: 'expiring', expiresAt });
    await sleep(expiresAt.getTime() - Date.now() + 200);
    // Before any sweep: the counters still show 60, but the 50 have lapsed.
    expect(await balance(u.userId)).toMatchObject({ available: 60 });
    expect(await ledgerCode(reserve(u.userId, 20))).toBe('insufficient_credits');
    expect((await transfers(u.accountId)).filter((t) => t.kind === 'expire')).toEqual([]); // rolled back with the refusal
    await reserve(u.userId, 10);
    expect((await transfers(u.accountId)).filter((t) => t.kind === 'expire')).toEqual([
      expect.objectContaining({ amount: 50, grant_id: expiring.id }),
    ]);
    expect(await balance(u.userId)).toMatchObject({ available: 0, reserved: 10, expired: 50 });
  });
});

/*
 * A release whose transaction started before a grant lapsed, but which takes the account lock only
 * after another transaction has expired that grant's lot. It used to compare the lot's expiry with
 * its own (earlier) now() and hand the credit back to the lapsed lot, which then blocked every later
 * expiry of the account with a duplicate key. The ledger now reads the clock after the lock.
 */
describe('a release racing the expiry of the grant it drew from', () => {
  let u: Awaited<ReturnType<typeof newUser>>;
  let lapsed: ledger.Transfer;
  beforeAll(async () => {
    u = await newUser();
    const expiresAt = new Date(Date.now() + 1500);
    lapsed = await grant(u.userId, 100, { expiresAt });
    const r = await reserve(u.userId, 40);
    const late = await db.connect();
    try {
      await late.query('BEGIN');
      await late.query(`SELECT set_config('app.user_id', $1, true)`, [u.userId]);
      await sleep(expiresAt.getTime() - Date.now() + 200);
      // The sweep (or any reservation of this user) expires the 60 still in the lot...
      await withSystemTx(systemDb(), (tx) => tx.query('SELECT ledger_expire_grants()'));
      // ...then the release that began before the expiry gets the lock.
      await late.query('SELECT ledger_release($1, $2, NULL)', [randomUUID(), r.id]);
      await late.query('COMMIT');
    } finally {
      late.release();
    }
  });

  it('expires the part drawn from the lapsed grant instead of handing it back', async () => {
    expect(await balance(u.userId)).toMatchObject({ available: 0, reserved: 0, expired: 100 });
    expect(await ledgerCode(reserve(u.userId, 10))).toBe('insufficient_credits');
    await withSystemTx(systemDb(), (tx) => tx.query('SELECT ledger_expire_grants()'));
    expect(await problemsOf(u.accountId)).toEqual([]);
    expect(lapsed.kind).toBe('grant');
  });
});

// --- the checker --------------------------------------------------------------------------------

describe('the hot path (db/migrations/007_ledger_hot_path.sql)', () => {
  const deadline = () => new Date(Date.now() + DAY_MS);
  /** Holds the account's row lock from another connection until `unlock` is called. */
  async function lockAccount(accountId: string) {
    const holder = new pg.Client({ connectionString: testStack().databaseUrl });
    await holder.connect();
    await holder.query('BEGIN');
    // The lock a reserve's or a release's UPDATE takes (FOR UPDATE would also block foreign-key checks).
    await holder.query('SELECT 1 FROM credit_accounts WHERE id = $1 FOR NO KEY UPDATE', [accountId]);
    return async () => {
      await holder.query('ROLLBACK');
      await holder.end();
    };
  }

  it('commits without waiting for the account row, which a reserve must wait for', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    const r = await ledger.reserve(db, {
      userId: u.userId,
      id: randomUUID(),
      amount: 10,
      generationId: null,
      deadline: deadline(),
    });
    const unlock = await lockAccount(u.accountId);
    let reserved = false;
    const waiting = ledger
      .reserve(db, {
        userId: u.userId,
        id: randomUUID(),
        amount: 10,
        generationId: null,
        deadline: deadline(),
      })
      .then(() => (reserved = true));
    try {
      // The commit completes while the lock is held (it would time out otherwise)...
      const c = await ledger.commit(db, { userId: u.userId, id: randomUUID(), pendingId: r.id });
      expect(c).toMatchObject({ kind: 'commit', amount: 10, pendingId: r.id });
      // ...while the reserve is still queued behind the lock.
      expect(reserved).toBe(false);
    } finally {
      await unlock();
    }
    await waiting;
    expect(await balance(u.userId)).toMatchObject({ available: 80, reserved: 10, spent: 10 });
  });

  it('counts commits in stripes that the fold moves into the account row, changing no balance', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    for (let i = 0; i < 5; i++) {
      const r = await reserve(u.userId, 7);
      await commit(u.userId, r.id);
    }
    await reserve(u.userId, 4);
    const before = await balance(u.userId);
    expect(before).toMatchObject({ available: 61, reserved: 4, spent: 35 });
    const row = async () =>
      (
        await owner.query<{ debits_posted: number; debits_pending: number; striped: number }>(
          `SELECT a.debits_posted::int, a.debits_pending::int,
                  (SELECT coalesce(sum(amount), 0)::int FROM credit_commit_stripes s WHERE s.account_id = a.id) AS striped
           FROM credit_accounts a WHERE a.id = $1`,
          [u.accountId],
        )
      ).rows[0]!;
    // Until folded, the committed 35 still sit in the row's debits_pending and in the stripes.
    expect(await row()).toEqual({ debits_posted: 0, debits_pending: 39, striped: 35 });
    const folded = await withSystemTx(
      systemDb(),
      async (tx) => (await tx.query<{ n: number }>('SELECT ledger_fold_commits() AS n')).rows[0]!.n,
    );
    expect(folded).toBeGreaterThanOrEqual(1);
    expect(await row()).toEqual({ debits_posted: 35, debits_pending: 4, striped: 0 });
    expect(await balance(u.userId)).toEqual(before);
    expect(await problemsOf(u.accountId)).toEqual([]);
  });

  it("acts for the given user in one statement, and refuses a user other than the transaction's", async () => {
    const a = await newUser(100);
    const b = await newUser(100);
    cleanAccounts.push(a.accountId, b.accountId);
    const p = { id: randomUUID(), amount: 5, generationId: null, deadline: deadline() };
    expect(await ledger.reserve(db, { ...p, userId: a.userId })).toMatchObject({
      userId: a.userId,
      amount: 5,
    });
    // Inside B's transaction, acting for A is a bug in the caller, not a ledger refusal.
    const wrong = await failure(
      withUserTx(db, b.userId, (tx) => ledger.reserve(tx, { ...p, id: randomUUID(), userId: a.userId })),
    );
    expect(wrong).not.toBeInstanceOf(LedgerError);
    expect(wrong.code).toBe('42501');
    // Neither a user nor a scoped transaction: refused the same way.
    expect((await failure(ledger.reserve(db, { ...p, id: randomUUID() }))).code).toBe('42501');
    // A cannot commit B's reservation by naming it.
    const rb = await ledger.reserve(db, { ...p, id: randomUUID(), userId: b.userId });
    expect(
      await ledgerCode(ledger.commit(db, { userId: a.userId, id: randomUUID(), pendingId: rb.id })),
    ).toBe('not_found');
    expect(await balance(a.userId)).toMatchObject({ available: 95, reserved: 5 });
    expect(await balance(b.userId)).toMatchObject({ available: 95, reserved: 5 });
  });

  it('batches reserves that arrive together for one user, each still succeeding or failing on its own', async () => {
    const u = await newUser(100);
    cleanAccounts.push(u.accountId);
    const pool = testDb(testConfig());
    const statements: string[] = [];
    const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
    (pool as unknown as { query: typeof query }).query = (...args: unknown[]) => {
      const q = args[0] as { name?: string } | string;
      statements.push(typeof q === 'string' ? q : (q.name ?? 'unnamed'));
      return query(...args);
    };
    try {
      const ids = Array.from({ length: 12 }, () => randomUUID());
      const at = (id: string, amount = 10) =>
        ledger.reserve(pool, { userId: u.userId, id, amount, generationId: null, deadline: deadline() });
      const settled = await Promise.allSettled([
        ...ids.map((id) => at(id)),
        at(ids[0]!), // replays of the first
        at(ids[0]!),
        at(ids[1]!, 11), // the second id with another amount
      ]);
      const outcome = settled.map((r) =>
        r.status === 'fulfilled' ? r.value.id : `${(r.reason as LedgerError).code}`,
      );
      // In order: ten reserves fit in 100 credits, two do not; the replays return the first; the
      // reused id conflicts. None of the refusals moved anything.
      expect(outcome).toEqual([
        ...ids.slice(0, 10),
        'insufficient_credits',
        'insufficient_credits',
        ids[0],
        ids[0],
        'transfer_conflict',
      ]);
      expect(await balance(u.userId)).toMatchObject({ available: 0, reserved: 100 });
      expect((await transfers(u.accountId)).filter((t) => t.kind === 'reserve')).toHaveLength(10);
      // The first went alone (a plain call); the 14 that arrived while it was in flight, as one batch.
      expect(statements).toEqual(['ledger_reserve', 'ledger_reserve_batch']);
    } finally {
      await pool.end();
    }
  });

  it('answers transfer_conflict, not a raw unique violation, when two accounts race for one transfer id', async () => {
    const a = await newUser(100);
    const b = await newUser(100);
    cleanAccounts.push(a.accountId, b.accountId);
    for (let i = 0; i < 10; i++) {
      const id = randomUUID();
      const results = await Promise.allSettled([reserve(a.userId, 1, id), reserve(b.userId, 1, id)]);
      const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as LedgerError).code));
      expect(codes.sort()).toEqual(['ok', 'transfer_conflict']);
    }
    const [ba, bb] = [await balance(a.userId), await balance(b.userId)];
    expect(ba.reserved + bb.reserved).toBe(10);
  });
});

describe('checkLedger', () => {
  it('is clean for every account the tests above exercised', async () => {
    expect(cleanAccounts.length).toBeGreaterThan(5);
    expect(await problemsOf(...cleanAccounts)).toEqual([]);
  });

  it('reports a deliberately broken account and transfer, then is clean again once repaired', async () => {
    const u = await newUser(100);
    const r = await reserve(u.userId, 30);
    const c = await commit(u.userId, r.id);
    expect(await problemsOf(u.accountId)).toEqual([]);

    await owner.query(
      'UPDATE credit_accounts SET credits_posted = credits_posted + 7, expiring_credit = expiring_credit + 7 WHERE id = $1',
      [u.accountId],
    );
    // Rewriting history needs the trigger out of the way: only the owner can do that.
    await owner.query('BEGIN');
    await owner.query('SET LOCAL session_replication_role = replica');
    await owner.query('UPDATE credit_transfers SET amount = amount + 5 WHERE id = $1', [c.id]);
    await owner.query('COMMIT');
    try {
      const problems = await problemsOf(u.accountId);
      expect(problems.map((p) => p.kind).sort()).toEqual(
        [
          'credits_posted_mismatch',
          'debits_posted_mismatch',
          'lots_mismatch',
          'transfer_link_mismatch',
        ].sort(),
      );
      expect(problems.find((p) => p.kind === 'credits_posted_mismatch')).toMatchObject({
        accountId: u.accountId,
        detail: 'credits_posted 107, but its grants sum to 100',
      });
      expect(problems.find((p) => p.kind === 'debits_posted_mismatch')?.detail).toBe(
        'debits_posted 30, but its commits and expiries sum to 35',
      );
      expect(problems.find((p) => p.kind === 'lots_mismatch')?.detail).toBe(
        'expiring credit 7, but its lots hold 0',
      );

      // The command line says so too, and exits 1.
      const cli = await runScript('scripts/ledger-check.ts', [], {
        DATABASE_SYSTEM_URL: testStack().systemDatabaseUrl,
      });
      expect(cli.code).toBe(1);
      expect(cli.stdout).toContain(`credits_posted_mismatch account ${u.accountId}: credits_posted 107`);
      expect(cli.stdout).toMatch(/^ledger check: \d+ accounts, \d+ transfers, [1-9]\d* problems$/m);
    } finally {
      await owner.query(
        'UPDATE credit_accounts SET credits_posted = credits_posted - 7, expiring_credit = expiring_credit - 7 WHERE id = $1',
        [u.accountId],
      );
      await owner.query('BEGIN');
      await owner.query('SET LOCAL session_replication_role = replica');
      await owner.query('UPDATE credit_transfers SET amount = amount - 5 WHERE id = $1', [c.id]);
      await owner.query('COMMIT');
    }
    expect(await problemsOf(u.accountId)).toEqual([]);
  });

  it('reports terminal generations without exactly one matching resolution', async () => {
    const u = await newUser(300);
    const gen = (status: string) => ({ id: randomUUID(), status });
    const ok = gen('succeeded'); // committed: sound
    const wrong = gen('succeeded'); // released although it succeeded
    const open = gen('failed'); // reservation still pending
    const bare = gen('canceled'); // no reservation at all
    const insert = (g: { id: string; status: string }) =>
      owner.query(
        `INSERT INTO generations (id, user_id, model, input, credits, provider, status, completed_at)
         VALUES ($1, $2, 'imagen4-ultra', '{}', 45, 'local', $3, now())`,
        [g.id, u.userId, g.status],
      );
    for (const g of [ok, wrong, open, bare]) await insert(g);
    try {
      const rOk = await reserve(u.userId, 45, randomUUID(), ok.id);
      await commit(u.userId, rOk.id);
      const rWrong = await reserve(u.userId, 45, randomUUID(), wrong.id);
      await release(u.userId, rWrong.id);
      await reserve(u.userId, 45, randomUUID(), open.id);

      const byGeneration = Object.fromEntries(
        (await problemsOf(u.accountId)).map((p) => [p.generationId, p.kind]),
      );
      expect(byGeneration).toEqual({
        [wrong.id]: 'generation_wrong_resolution',
        [open.id]: 'generation_unresolved',
        [bare.id]: 'generation_unreserved',
      });
    } finally {
      await owner.query('DELETE FROM generations WHERE id = ANY($1)', [[ok.id, wrong.id, open.id, bare.id]]);
    }
  });

  it('exits 2 from the command line when the database cannot be reached', async () => {
    const cli = await runScript('scripts/ledger-check.ts', [], {
      DATABASE_SYSTEM_URL: 'postgres://nobody:x@127.0.0.1:1/velro',
    });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('cannot connect');
  });
});

describe('ids derived in SQL', () => {
  it('are the RFC 9562 version-8 uuids lib/ledger/ids.ts derives from the same text', async () => {
    for (const text of ['velro:test', 'expire:7b0c1f6e-4a52-4d86-9a0e-5f1c9f0c2d11', 'signup:é✓']) {
      const { rows } = await owner.query<{ id: string }>('SELECT ledger_derived_id($1) AS id', [text]);
      expect(rows[0]!.id).toBe(derivedUuid(text));
      expect(rows[0]!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });
});
