import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx, withUserTx, type Db, type Tx } from '../../lib/db/pool';
import { checkLedger, type LedgerProblem } from '../../lib/ledger/check';
import { LedgerError, spendLimitOf } from '../../lib/ledger/errors';
import * as ledger from '../../lib/ledger/ledger';
import { createUser, systemDb, testConfig, testDb, testStack } from '../support/context';
import { addMember, createTeam, grantTeam } from '../support/teams';

/**
 * Team accounts in the ledger, at the SQL level (db/migrations/009_teams.sql): reservations by
 * members within their monthly spend limit, atomically; refunds give the room back.
 */

const hour = () => new Date(Date.now() + 3600_000);

function reserveTeam(tx: Tx, teamId: string, amount: number, id = randomUUID()) {
  return tx.query<{ id: string; user_id: string; team_id: string }>(
    'SELECT * FROM ledger_reserve_team($1, $2, NULL, $3, $4)',
    [id, amount, hour(), teamId],
  );
}

async function setLimit(teamId: string, userId: string, limit: number | null) {
  await withSystemTx(systemDb(), (tx) =>
    tx.query('UPDATE team_members SET monthly_spend_limit = $3 WHERE team_id = $1 AND user_id = $2', [
      teamId,
      userId,
      limit,
    ]),
  );
}

describe('team accounts in the ledger', () => {
  let db: Db;
  beforeAll(() => {
    db = testDb(testConfig());
  });
  afterAll(async () => {
    await db.end();
  });

  it('a member reserves from the team account, within its monthly limit; a release gives the room back', async () => {
    const owner = await createUser(db);
    const member = await createUser(db);
    const teamId = await createTeam(db, owner.userId);
    await addMember(db, teamId, owner.userId, member, 'member');
    await grantTeam(teamId, 1000);
    await setLimit(teamId, member.userId, 100);

    const first = await withUserTx(db, member.userId, (tx) => reserveTeam(tx, teamId, 60));
    expect(first.rows[0]).toMatchObject({ user_id: member.userId, team_id: teamId });
    await expect(withUserTx(db, member.userId, (tx) => reserveTeam(tx, teamId, 60))).rejects.toMatchObject({
      code: 'VL429',
    });
    await withUserTx(db, member.userId, (tx) =>
      tx.query('SELECT ledger_release($1, $2, $3)', [randomUUID(), first.rows[0]!.id, 'refund']),
    );
    await withUserTx(db, member.userId, (tx) => reserveTeam(tx, teamId, 100));
    const balance = await withUserTx(db, member.userId, (tx) =>
      tx.query('SELECT available, debits_pending FROM credit_balances WHERE team_id = $1', [teamId]),
    );
    expect(balance.rows[0]).toEqual({ available: 900, debits_pending: 100 });
    // The personal account is untouched.
    const personal = await withUserTx(db, member.userId, (tx) =>
      tx.query('SELECT available FROM credit_balances WHERE user_id = $1', [member.userId]),
    );
    expect(personal.rows[0]).toEqual({ available: 0 });
  });

  it('admits exactly the affordable number of 100 concurrent reserves against a limit', async () => {
    const owner = await createUser(db);
    const member = await createUser(db);
    const teamId = await createTeam(db, owner.userId);
    await addMember(db, teamId, owner.userId, member, 'member');
    await grantTeam(teamId, 100_000);
    await setLimit(teamId, member.userId, 1000);
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () => withUserTx(db, member.userId, (tx) => reserveTeam(tx, teamId, 45))),
    );
    const admitted = results.filter((r) => r.status === 'fulfilled').length;
    expect(admitted).toBe(Math.floor(1000 / 45));
    for (const r of results)
      if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('VL429');
  });

  it('refuses viewers and outsiders', async () => {
    const owner = await createUser(db);
    const viewer = await createUser(db);
    const outsider = await createUser(db);
    const teamId = await createTeam(db, owner.userId);
    await addMember(db, teamId, owner.userId, viewer, 'viewer');
    await grantTeam(teamId, 1000);
    await expect(withUserTx(db, viewer.userId, (tx) => reserveTeam(tx, teamId, 10))).rejects.toMatchObject({
      code: 'VL403',
    });
    await expect(withUserTx(db, outsider.userId, (tx) => reserveTeam(tx, teamId, 10))).rejects.toMatchObject({
      code: 'VL404',
    });
  });

  it('shows every member, not only admins, what expired on the team account', async () => {
    const owner = await createUser(db);
    const viewer = await createUser(db);
    const teamId = await createTeam(db, owner.userId);
    await addMember(db, teamId, owner.userId, viewer, 'viewer');
    await grantTeam(teamId, 100);
    await withSystemTx(systemDb(), (tx) =>
      ledger.grant(tx, {
        id: randomUUID(),
        teamId,
        amount: 30,
        reason: 'trial',
        expiresAt: new Date(Date.now() + 300),
      }),
    );
    await new Promise((r) => setTimeout(r, 400));
    await withSystemTx(systemDb(), (tx) => tx.query('SELECT ledger_expire_grants()'));
    const expected = { available: 100, reserved: 0, spent: 0, granted: 130, expired: 30 };
    for (const who of [owner, viewer])
      expect(await withUserTx(db, who.userId, (tx) => ledger.teamBalance(tx, teamId))).toEqual(expected);
    const outsider = await createUser(db);
    expect(await withUserTx(db, outsider.userId, (tx) => ledger.teamBalance(tx, teamId))).toEqual({
      available: 0,
      reserved: 0,
      spent: 0,
      granted: 0,
      expired: 0,
    });
  });
});

/** Outcomes of settled ledger calls: how many succeeded, and the codes of those refused. */
function tally<T>(results: PromiseSettledResult<T>[]) {
  const refused: Record<string, number> = {};
  for (const r of results)
    if (r.status === 'rejected') {
      const code = r.reason instanceof LedgerError ? r.reason.code : String(r.reason);
      refused[code] = (refused[code] ?? 0) + 1;
    }
  return {
    admitted: results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
    refused,
  };
}

describe('spend limits through lib/ledger', () => {
  let db: Db;
  beforeAll(() => {
    db = testDb(testConfig());
  });
  afterAll(async () => {
    await db.end();
  });

  const reserveAs = (userId: string, teamId: string, amount: number) =>
    ledger.reserve(db, { userId, teamId, id: randomUUID(), amount, generationId: null, deadline: hour() });

  async function teamWithMember(limit: number | null, credits = 100_000) {
    const owner = await createUser(db);
    const member = await createUser(db);
    const teamId = await createTeam(db, owner.userId);
    await addMember(db, teamId, owner.userId, member, 'member');
    await grantTeam(teamId, credits);
    await setLimit(teamId, member.userId, limit);
    return { owner, member, teamId };
  }

  it('admits exactly floor(limit / amount) of 100 concurrent one-statement reserves; releasing k makes room for exactly k more', async () => {
    const { member, teamId } = await teamWithMember(1000);
    const first = tally(
      await Promise.allSettled(Array.from({ length: 100 }, () => reserveAs(member.userId, teamId, 45))),
    );
    expect(first.admitted).toHaveLength(22); // 22 × 45 = 990 of 1000
    expect(first.refused).toEqual({ spend_limit_exceeded: 78 });
    const refusal = (await reserveAs(member.userId, teamId, 45).catch((e: unknown) => e)) as LedgerError;
    expect(spendLimitOf(refusal)).toEqual({ limit: 1000, remaining: 10 });

    for (const r of first.admitted.slice(0, 5))
      await ledger.release(db, { userId: member.userId, id: randomUUID(), pendingId: r.id, reason: 'test' });
    const second = tally(
      await Promise.allSettled(Array.from({ length: 100 }, () => reserveAs(member.userId, teamId, 45))),
    );
    expect(second.admitted).toHaveLength(5);
    expect(second.refused).toEqual({ spend_limit_exceeded: 95 });

    const balance = await withUserTx(db, member.userId, (tx) => ledger.teamBalance(tx, teamId));
    expect(balance).toEqual({
      available: 100_000 - 990,
      reserved: 990,
      spent: 0,
      granted: 100_000,
      expired: 0,
    });
    const usage = await withSystemTx(systemDb(), (tx) =>
      tx.query<{ used: number }>('SELECT used FROM team_member_usage WHERE team_id = $1 AND user_id = $2', [
        teamId,
        member.userId,
      ]),
    );
    expect(usage.rows).toEqual([{ used: 990 }]);
  });

  it("counts commits as spent, and takes a limit lowered below this month's spend, which stops new reservations", async () => {
    const { owner, member, teamId } = await teamWithMember(100);
    const spent = await reserveAs(member.userId, teamId, 60);
    await ledger.commit(db, { userId: member.userId, id: randomUUID(), pendingId: spent.id });
    // 60 committed + 50 > 100: the commit still counts.
    await expect(reserveAs(member.userId, teamId, 50)).rejects.toMatchObject({
      code: 'spend_limit_exceeded',
    });
    const pending = await reserveAs(member.userId, teamId, 30);

    // The owner lowers the limit below the 90 used: accepted.
    await withUserTx(db, owner.userId, (tx) =>
      tx.query('UPDATE team_members SET monthly_spend_limit = 50 WHERE team_id = $1 AND user_id = $2', [
        teamId,
        member.userId,
      ]),
    );
    const stopped = (await reserveAs(member.userId, teamId, 1).catch((e: unknown) => e)) as LedgerError;
    expect(stopped).toBeInstanceOf(LedgerError);
    expect(spendLimitOf(stopped)).toEqual({ limit: 50, remaining: 0 });
    // Refunding the pending 30 leaves 60 spent, still above 50.
    await ledger.release(db, { userId: member.userId, id: randomUUID(), pendingId: pending.id });
    await expect(reserveAs(member.userId, teamId, 1)).rejects.toMatchObject({ code: 'spend_limit_exceeded' });
    // No limit: it spends again, from the team's credit.
    await setLimit(teamId, member.userId, null);
    await reserveAs(member.userId, teamId, 1);
    const balance = await withUserTx(db, member.userId, (tx) => ledger.teamBalance(tx, teamId));
    expect(balance).toEqual({
      available: 100_000 - 61,
      reserved: 1,
      spent: 60,
      granted: 100_000,
      expired: 0,
    });
  });
});

describe('ledger:check on team accounts', () => {
  let db: Db;
  /** The owner login (superuser): bypasses RLS and can step around the append-only trigger. */
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

  /** The ledger is shared with other test files: look at these accounts only. */
  const problemsOf = async (...accountIds: string[]): Promise<LedgerProblem[]> =>
    (await checkLedger(systemDb())).filter((p) => p.accountId && accountIds.includes(p.accountId));

  const accountOf = async (column: 'user_id' | 'team_id', id: string) =>
    (await owner.query<{ id: string }>(`SELECT id FROM credit_accounts WHERE ${column} = $1`, [id])).rows[0]!
      .id;

  /** A team with a member who reserved, committed, released and holds one open reservation; and its personal account. */
  async function busyTeam() {
    const ownerUser = await createUser(db);
    const member = await createUser(db, 500);
    const teamId = await createTeam(db, ownerUser.userId);
    await addMember(db, teamId, ownerUser.userId, member, 'member');
    await grantTeam(teamId, 1000);
    const expiringGrant = randomUUID();
    await withSystemTx(systemDb(), (tx) =>
      ledger.grant(tx, { id: expiringGrant, teamId, amount: 300, reason: 'expiring', expiresAt: hour() }),
    );
    await setLimit(teamId, member.userId, 800);
    const r = (amount: number, team: string | null = teamId) =>
      ledger.reserve(db, {
        userId: member.userId,
        teamId: team,
        id: randomUUID(),
        amount,
        generationId: null,
        deadline: hour(),
      });
    const committed = await r(400); // draws the 300 expiring first
    const commit = await ledger.commit(db, {
      userId: member.userId,
      id: randomUUID(),
      pendingId: committed.id,
    });
    const released = await r(100);
    await ledger.release(db, { userId: member.userId, id: randomUUID(), pendingId: released.id });
    await r(50);
    // And the member's own account, alongside.
    const personal = await r(70, null);
    await ledger.commit(db, { userId: member.userId, id: randomUUID(), pendingId: personal.id });
    return {
      teamId,
      member,
      teamAccount: await accountOf('team_id', teamId),
      personalAccount: await accountOf('user_id', member.userId),
      committed,
      commit,
      expiringGrant,
    };
  }

  it('is clean for personal and team accounts used side by side', async () => {
    const t = await busyTeam();
    expect(await problemsOf(t.teamAccount, t.personalAccount)).toEqual([]);
    const balance = await withUserTx(db, t.member.userId, (tx) => ledger.teamBalance(tx, t.teamId));
    expect(balance).toEqual({ available: 850, reserved: 50, spent: 400, granted: 1300, expired: 0 });
    // The fold moves commit stripes into the account row, and the ledger stays sound.
    await withSystemTx(systemDb(), (tx) => tx.query('SELECT ledger_fold_commits()'));
    expect(await problemsOf(t.teamAccount, t.personalAccount)).toEqual([]);
  });

  it('reports a corrupted team counter, then is clean once repaired', async () => {
    const t = await busyTeam();
    await owner.query('UPDATE credit_accounts SET debits_pending = debits_pending + 9 WHERE id = $1', [
      t.teamAccount,
    ]);
    try {
      const problems = await problemsOf(t.teamAccount, t.personalAccount);
      expect(problems).toEqual([
        {
          kind: 'debits_pending_mismatch',
          accountId: t.teamAccount,
          detail: 'debits_pending 59, but its unresolved reserves sum to 50',
        },
      ]);
    } finally {
      await owner.query('UPDATE credit_accounts SET debits_pending = debits_pending - 9 WHERE id = $1', [
        t.teamAccount,
      ]);
    }
    expect(await problemsOf(t.teamAccount)).toEqual([]);
  });

  it("reports a member's usage row out of step with its reservations", async () => {
    const t = await busyTeam();
    const month = new Date().toISOString().slice(0, 7);
    const shift = (by: number) =>
      owner.query('UPDATE team_member_usage SET used = used + $3 WHERE team_id = $1 AND user_id = $2', [
        t.teamId,
        t.member.userId,
        by,
      ]);
    await shift(-25);
    try {
      expect(await problemsOf(t.teamAccount, t.personalAccount)).toEqual([
        {
          kind: 'team_usage_mismatch',
          accountId: t.teamAccount,
          detail: `team ${t.teamId}, member ${t.member.userId}, ${month}: used 425, but the reserves that month minus their releases sum to 450`,
        },
      ]);
    } finally {
      await shift(25);
    }
    expect(await problemsOf(t.teamAccount)).toEqual([]);
  });

  it("reports a team line whose owner columns are not its account's", async () => {
    const t = await busyTeam();
    // Rewriting history needs the append-only trigger out of the way: only the owner can do that.
    const rewrite = async (sql: string, params: unknown[]) => {
      await owner.query('BEGIN');
      await owner.query('SET LOCAL session_replication_role = replica');
      await owner.query(sql, params);
      await owner.query('COMMIT');
    };
    // The commit forgets its team (it looks like a personal line of the member's), and an
    // allocation claims the member's personal account.
    await rewrite('UPDATE credit_transfers SET team_id = NULL WHERE id = $1', [t.commit.id]);
    await rewrite('UPDATE credit_allocations SET team_id = NULL, user_id = $2 WHERE reserve_id = $1', [
      t.committed.id,
      t.member.userId,
    ]);
    try {
      const problems = await problemsOf(t.teamAccount, t.personalAccount);
      expect(problems.map((p) => p.detail).sort()).toEqual(
        [
          `commit ${t.commit.id} has user ${t.member.userId}, team none, but sits on the account of team ${t.teamId}`,
          `allocation ${t.committed.id} of ${t.expiringGrant} has user ${t.member.userId}, team none; its account user none, team ${t.teamId}`,
        ].sort(),
      );
      expect(problems.every((p) => p.kind === 'owner_mismatch' && p.accountId === t.teamAccount)).toBe(true);
    } finally {
      await rewrite('UPDATE credit_transfers SET team_id = $2 WHERE id = $1', [t.commit.id, t.teamId]);
      await rewrite('UPDATE credit_allocations SET team_id = $2, user_id = NULL WHERE reserve_id = $1', [
        t.committed.id,
        t.teamId,
      ]);
    }
    expect(await problemsOf(t.teamAccount, t.personalAccount)).toEqual([]);
  });
  it('reports a terminal team generation without exactly one resolution on the team account', async () => {
    const t = await busyTeam();
    const ok = randomUUID();
    const open = randomUUID();
    for (const [id, status] of [
      [ok, 'succeeded'],
      [open, 'failed'],
    ] as const)
      await owner.query(
        `INSERT INTO generations (id, user_id, team_id, model, input, credits, provider, status, completed_at)
         VALUES ($1, $2, $3, 'imagen4-ultra', '{}', 45, 'local', $4, now())`,
        [id, t.member.userId, t.teamId, status],
      );
    try {
      const reserveFor = (generationId: string) =>
        ledger.reserve(db, {
          userId: t.member.userId,
          teamId: t.teamId,
          id: randomUUID(),
          amount: 45,
          generationId,
          deadline: hour(),
        });
      const r = await reserveFor(ok);
      await ledger.commit(db, { userId: t.member.userId, id: randomUUID(), pendingId: r.id });
      await reserveFor(open);
      expect(await problemsOf(t.teamAccount, t.personalAccount)).toEqual([
        {
          kind: 'generation_unresolved',
          accountId: t.teamAccount,
          generationId: open,
          detail: 'failed generation has 1 reserve(s), 0 commit(s), 0 release(s)',
        },
      ]);
    } finally {
      await owner.query('DELETE FROM generations WHERE id = ANY($1)', [[ok, open]]);
    }
  });
});
