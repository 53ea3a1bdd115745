import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx, withUserTx, type Db, type Tx } from '../../lib/db/pool';
import { createUser, systemDb, testConfig, testDb } from '../support/context';

/**
 * Team accounts in the ledger, at the SQL level (db/migrations/009_teams.sql): reservations by
 * members within their monthly spend limit, atomically; refunds give the room back.
 */

const hour = () => new Date(Date.now() + 3600_000);

async function createTeam(db: Db, ownerId: string, name = 'team'): Promise<string> {
  return withUserTx(db, ownerId, async (tx) => {
    const { rows } = await tx.query<{ id: string }>('SELECT create_team($1) AS id', [name]);
    return rows[0]!.id;
  });
}

/** Adds `userId` to the team with `role` the way production does: an invitation, accepted. */
async function addMember(db: Db, teamId: string, ownerId: string, user: { userId: string; email: string }, role: string) {
  const token = randomUUID();
  const hash = createHash('sha256').update(token).digest();
  await withUserTx(db, ownerId, (tx) =>
    tx.query(
      `INSERT INTO team_invitations (team_id, email, role, token_hash, invited_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, now() + interval '7 days')`,
      [teamId, user.email, role, hash, ownerId],
    ),
  );
  const { rows } = await withUserTx(db, user.userId, (tx) =>
    tx.query<{ outcome: string }>('SELECT outcome FROM accept_team_invitation($1)', [hash]),
  );
  expect(rows[0]!.outcome).toBe('joined');
}

async function grantTeam(teamId: string, amount: number) {
  await withSystemTx(systemDb(), (tx) =>
    tx.query('SELECT ledger_grant_team($1, $2, $3, $4)', [randomUUID(), teamId, amount, 'test']),
  );
}

function reserveTeam(tx: Tx, teamId: string, amount: number, id = randomUUID()) {
  return tx.query<{ id: string; user_id: string; team_id: string }>(
    'SELECT * FROM ledger_reserve_team($1, $2, NULL, $3, $4)',
    [id, amount, hour(), teamId],
  );
}

async function setLimit(teamId: string, userId: string, limit: number | null) {
  await withSystemTx(systemDb(), (tx) =>
    tx.query('UPDATE team_members SET monthly_spend_limit = $3 WHERE team_id = $1 AND user_id = $2', [teamId, userId, limit]),
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
});
