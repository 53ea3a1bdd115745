import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx, withUserTx, type Db } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { createUser, systemDb, testConfig, testDb } from '../support/context';
import { addMember, createTeam, grantTeam, removeMember } from '../support/teams';

/**
 * The teams' wall in SQL (db/migrations/009_teams.sql), as velro_app: who sees and changes which
 * rows of a team is decided by membership, for every table that has a team, and a removed member
 * loses it in the very next statement.
 */

type Person = Awaited<ReturnType<typeof createUser>>;

const TEAM_TABLES = ['teams', 'team_members', 'team_invitations', 'team_member_usage', 'team_audit_events'];

/** Tables with a team_id column (plus teams itself, keyed by id). */
async function tablesWithTeam(): Promise<{ table: string; column: string }[]> {
  const { rows } = await withSystemTx(systemDb(), (tx) =>
    tx.query<{ table_name: string }>(
      `SELECT c.table_name FROM information_schema.columns c
       JOIN information_schema.tables t USING (table_schema, table_name)
       WHERE c.table_schema = 'public' AND c.column_name = 'team_id' AND t.table_type = 'BASE TABLE'
       ORDER BY 1`,
    ),
  );
  return [{ table: 'teams', column: 'id' }, ...rows.map((r) => ({ table: r.table_name, column: 'team_id' }))];
}

const count = (db: Db, who: Person, sql: string, params: unknown[] = []) =>
  withUserTx(db, who.userId, async (tx) => (await tx.query<{ n: number }>(sql, params)).rows[0]!.n);

describe('row-level security of teams', () => {
  let db: Db;
  let owner: Person, admin: Person, member: Person, viewer: Person, outsider: Person;
  let teamId: string;
  let memberProject: string;
  let finishedGeneration: string;
  let memberReserve: string;

  beforeAll(async () => {
    db = testDb(testConfig());
    [owner, admin, member, viewer, outsider] = (await Promise.all(
      Array.from({ length: 5 }, () => createUser(db, 100)),
    )) as [Person, Person, Person, Person, Person];
    teamId = await createTeam(db, owner.userId, 'wall');
    await addMember(db, teamId, owner.userId, admin, 'admin');
    await addMember(db, teamId, admin.userId, member, 'member');
    await addMember(db, teamId, admin.userId, viewer, 'viewer');
    await grantTeam(teamId, 1000);
    await withUserTx(db, admin.userId, (tx) =>
      tx.query('SELECT create_team_api_key($1, $2, $3, $4)', [
        teamId,
        'ci',
        'vk_test',
        createHash('sha256').update(randomUUID()).digest(),
      ]),
    );
    // The member's work: a project, a finished generation with an output, a reservation.
    memberProject = await withUserTx(db, member.userId, async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        `INSERT INTO projects (user_id, team_id, name) VALUES ($1, $2, 'shared') RETURNING id`,
        [member.userId, teamId],
      );
      return rows[0]!.id;
    });
    finishedGeneration = randomUUID();
    await withSystemTx(systemDb(), async (tx) => {
      await tx.query(
        `INSERT INTO generations (id, user_id, team_id, project_id, model, input, credits, provider, status, completed_at)
         VALUES ($1, $2, $3, $4, 'imagen4-ultra', '{"prompt":"team secret"}', 45, 'local', 'succeeded', now())`,
        [finishedGeneration, member.userId, teamId, memberProject],
      );
      await tx.query(
        `INSERT INTO assets (id, generation_id, user_id, team_id, position, storage_key, content_type, bytes, sha256)
         VALUES ($1, $2, $3, $4, 0, 'k', 'image/png', 1, $5)`,
        [
          randomUUID(),
          finishedGeneration,
          member.userId,
          teamId,
          createHash('sha256').update('x').digest('hex'),
        ],
      );
    });
    memberReserve = randomUUID();
    await withUserTx(db, member.userId, (tx) =>
      ledger.reserve(tx, {
        id: memberReserve,
        amount: 45,
        generationId: null,
        deadline: new Date(Date.now() + 3600_000),
        teamId,
      }),
    );
  });
  afterAll(async () => {
    await db?.end();
  });

  it('has RLS enabled and forced, with policies, on every new table', async () => {
    const { rows } = await withSystemTx(systemDb(), (tx) =>
      tx.query<{ relname: string; on: boolean; forced: boolean; policies: number }>(
        `SELECT c.relname, c.relrowsecurity AS on, c.relforcerowsecurity AS forced,
                (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relname = ANY($1) ORDER BY 1`,
        [TEAM_TABLES],
      ),
    );
    expect(rows.map((r) => r.relname)).toEqual([...TEAM_TABLES].sort());
    for (const r of rows) expect(r, r.relname).toMatchObject({ on: true, forced: true });
    for (const r of rows) expect(r.policies, r.relname).toBeGreaterThan(0);
  });

  it("shows an outsider none of the team's rows, in any table that has a team", async () => {
    const tables = await tablesWithTeam();
    expect(tables.map((t) => t.table)).toEqual(
      expect.arrayContaining([
        'teams',
        'team_members',
        'projects',
        'generations',
        'assets',
        'credit_accounts',
        'credit_transfers',
        'api_keys',
      ]),
    );
    for (const { table, column } of tables) {
      const seenBySystem = await withSystemTx(
        systemDb(),
        async (tx) =>
          (
            await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [
              teamId,
            ])
          ).rows[0]!.n,
      );
      const seen = await count(db, outsider, `SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [
        teamId,
      ]);
      expect(seen, table).toBe(0);
      if (['teams', 'team_members', 'projects', 'generations', 'assets', 'credit_transfers'].includes(table))
        expect(seenBySystem, `${table} has seeded rows`).toBeGreaterThan(0);
    }
  });

  it("shows a viewer the team, its people, work and balance, but not invitations, audit, keys or others' ledger lines", async () => {
    const q = (sql: string) => count(db, viewer, sql, [teamId]);
    expect(await q('SELECT count(*)::int AS n FROM teams WHERE id = $1')).toBe(1);
    expect(await q('SELECT count(*)::int AS n FROM team_members WHERE team_id = $1')).toBe(5); // 4 people + the key's bot
    expect(await q('SELECT count(*)::int AS n FROM projects WHERE team_id = $1')).toBe(1);
    expect(await q('SELECT count(*)::int AS n FROM generations WHERE team_id = $1')).toBe(1);
    expect(await q('SELECT count(*)::int AS n FROM assets WHERE team_id = $1')).toBe(1);
    expect(await q('SELECT count(*)::int AS n FROM credit_balances WHERE team_id = $1')).toBe(1);
    expect(await q('SELECT count(*)::int AS n FROM team_invitations WHERE team_id = $1')).toBe(0);
    expect(await q('SELECT count(*)::int AS n FROM team_audit_events WHERE team_id = $1')).toBe(0);
    expect(await q('SELECT count(*)::int AS n FROM api_keys WHERE team_id = $1')).toBe(0);
    expect(await q('SELECT count(*)::int AS n FROM credit_transfers WHERE team_id = $1')).toBe(0);
    // Teammates see each other's email, nothing more of users.
    const emails = await withUserTx(db, viewer.userId, (tx) =>
      tx.query<{ email: string }>('SELECT email FROM users WHERE id = $1', [owner.userId]),
    );
    expect(emails.rows).toEqual([{ email: owner.email }]);
    await expect(
      withUserTx(db, viewer.userId, (tx) =>
        tx.query('SELECT password_hash FROM users WHERE id = $1', [owner.userId]),
      ),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('shows a member its own ledger lines and usage only; an admin every line, the audit log and the invitations', async () => {
    expect(
      await count(db, member, 'SELECT count(*)::int AS n FROM credit_transfers WHERE team_id = $1', [teamId]),
    ).toBe(1);
    expect(
      await count(db, member, 'SELECT count(*)::int AS n FROM team_member_usage WHERE team_id = $1', [
        teamId,
      ]),
    ).toBe(1);
    expect(
      await count(db, viewer, 'SELECT count(*)::int AS n FROM team_member_usage WHERE team_id = $1', [
        teamId,
      ]),
    ).toBe(0);
    expect(
      await count(db, admin, 'SELECT count(*)::int AS n FROM credit_transfers WHERE team_id = $1', [teamId]),
    ).toBe(2); // grant + reserve
    expect(
      await count(db, admin, 'SELECT count(*)::int AS n FROM team_member_usage WHERE team_id = $1', [teamId]),
    ).toBe(1);
    expect(
      await count(db, admin, 'SELECT count(*)::int AS n FROM team_invitations WHERE team_id = $1', [teamId]),
    ).toBe(3);
    expect(
      await count(db, admin, 'SELECT count(*)::int AS n FROM api_keys WHERE team_id = $1', [teamId]),
    ).toBe(1);
    expect(
      await count(db, admin, 'SELECT count(*)::int AS n FROM team_audit_events WHERE team_id = $1', [teamId]),
    ).toBeGreaterThan(5);
  });

  it('refuses every write around the rules: joining, promoting, forging audit or usage, spending as a viewer', async () => {
    const refused = expect.objectContaining({ code: expect.stringMatching(/^(42501|VL403|VLT09)$/) });
    const asUser = (who: Person, sql: string, params: unknown[] = []) =>
      withUserTx(db, who.userId, (tx) => tx.query(sql, params));
    // No direct way in: only an invitation (or create_team) makes a membership.
    await expect(
      asUser(outsider, `INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, 'owner')`, [
        teamId,
        outsider.userId,
      ]),
    ).rejects.toEqual(refused);
    await expect(
      asUser(outsider, `INSERT INTO teams (name, created_by) VALUES ('x', $1)`, [outsider.userId]),
    ).rejects.toEqual(refused);
    // A member cannot promote itself (only admins update memberships): nothing changes.
    const selfPromote = await asUser(
      member,
      `UPDATE team_members SET role = 'admin' WHERE team_id = $1 AND user_id = $2`,
      [teamId, member.userId],
    );
    expect(selfPromote.rowCount).toBe(0);
    // An admin cannot make anyone owner, nor touch the owner.
    await expect(
      asUser(admin, `UPDATE team_members SET role = 'owner' WHERE team_id = $1 AND user_id = $2`, [
        teamId,
        admin.userId,
      ]),
    ).rejects.toEqual(refused);
    await expect(
      asUser(admin, `UPDATE team_members SET role = 'viewer' WHERE team_id = $1 AND user_id = $2`, [
        teamId,
        owner.userId,
      ]),
    ).rejects.toEqual(refused);
    await expect(
      asUser(admin, `DELETE FROM team_members WHERE team_id = $1 AND user_id = $2`, [teamId, owner.userId]),
    ).rejects.toEqual(refused);
    // The owner cannot leave without transferring.
    await expect(
      asUser(owner, `DELETE FROM team_members WHERE team_id = $1 AND user_id = $2`, [teamId, owner.userId]),
    ).rejects.toEqual(refused);
    // A member cannot invite; an admin cannot invite an owner.
    const hash = createHash('sha256').update(randomUUID()).digest();
    await expect(
      asUser(
        member,
        `INSERT INTO team_invitations (team_id, email, role, token_hash, invited_by, expires_at) VALUES ($1, 'z@x.io', 'viewer', $2, $3, now() + interval '1 day')`,
        [teamId, hash, member.userId],
      ),
    ).rejects.toEqual(refused);
    await expect(
      asUser(
        admin,
        `INSERT INTO team_invitations (team_id, email, role, token_hash, invited_by, expires_at) VALUES ($1, 'z@x.io', 'owner', $2, $3, now() + interval '1 day')`,
        [teamId, hash, admin.userId],
      ),
    ).rejects.toEqual(refused);
    // Audit and usage are written by the database only; the audit log refuses change even to velro_system.
    await expect(
      asUser(
        admin,
        `INSERT INTO team_audit_events (team_id, action, target_type) VALUES ($1, 'forged', 'x')`,
        [teamId],
      ),
    ).rejects.toEqual(refused);
    await expect(
      asUser(member, `UPDATE team_member_usage SET used = 0 WHERE team_id = $1`, [teamId]),
    ).rejects.toEqual(refused);
    await expect(asUser(admin, `DELETE FROM team_audit_events WHERE team_id = $1`, [teamId])).rejects.toEqual(
      refused,
    );
    await expect(
      withSystemTx(systemDb(), (tx) =>
        tx.query(`UPDATE team_audit_events SET action = 'x' WHERE team_id = $1`, [teamId]),
      ),
    ).rejects.toEqual(refused);
    // A viewer cannot create team work, nor spend; a member cannot change another's project.
    await expect(
      asUser(viewer, `INSERT INTO projects (user_id, team_id, name) VALUES ($1, $2, 'v')`, [
        viewer.userId,
        teamId,
      ]),
    ).rejects.toEqual(refused);
    await expect(
      withUserTx(db, viewer.userId, (tx) =>
        ledger.reserve(tx, {
          id: randomUUID(),
          amount: 1,
          generationId: null,
          deadline: new Date(Date.now() + 60_000),
          teamId,
        }),
      ),
    ).rejects.toMatchObject({ code: 'forbidden' });
    const otherMember = await createUser(db);
    await addMember(db, teamId, admin.userId, otherMember, 'member');
    const renamed = await asUser(otherMember, `UPDATE projects SET name = 'mine now' WHERE id = $1`, [
      memberProject,
    ]);
    expect(renamed.rowCount).toBe(0);
    const deleted = await asUser(otherMember, `DELETE FROM projects WHERE id = $1`, [memberProject]);
    expect(deleted.rowCount).toBe(0);
    // The admin may change anyone's team work.
    const byAdmin = await asUser(admin, `UPDATE projects SET name = 'curated' WHERE id = $1`, [
      memberProject,
    ]);
    expect(byAdmin.rowCount).toBe(1);
    // Nothing of the above wrote anything.
    const forged = await withSystemTx(systemDb(), (tx) =>
      tx.query(`SELECT 1 FROM team_audit_events WHERE team_id = $1 AND action = 'forged'`, [teamId]),
    );
    expect(forged.rowCount).toBe(0);
  });

  it('takes everything away from a removed member in the next statement, on the same connection', async () => {
    const leaver = await createUser(db);
    await addMember(db, teamId, admin.userId, leaver, 'member');
    const unfinished = randomUUID();
    await withSystemTx(systemDb(), (tx) =>
      tx.query(
        `INSERT INTO generations (id, user_id, team_id, model, input, credits, provider)
         VALUES ($1, $2, $3, 'imagen4-ultra', '{"prompt":"p"}', 45, 'local')`,
        [unfinished, leaver.userId, teamId],
      ),
    );
    const visible = (sql: string) => count(db, leaver, sql, [teamId]);
    expect(await visible('SELECT count(*)::int AS n FROM generations WHERE team_id = $1')).toBe(2); // its own and the member's
    expect(await visible('SELECT count(*)::int AS n FROM projects WHERE team_id = $1')).toBe(1);
    await removeMember(teamId, leaver.userId);
    expect(await visible('SELECT count(*)::int AS n FROM teams WHERE id = $1')).toBe(0);
    expect(await visible('SELECT count(*)::int AS n FROM projects WHERE team_id = $1')).toBe(0);
    expect(await visible('SELECT count(*)::int AS n FROM credit_balances WHERE team_id = $1')).toBe(0);
    expect(await visible('SELECT count(*)::int AS n FROM team_members WHERE team_id = $1')).toBe(0);
    // It keeps the record of its own work (the worker, acting as it, still settles the unfinished
    // one), and nothing else of the team's.
    const left = await withUserTx(db, leaver.userId, (tx) =>
      tx.query<{ id: string }>('SELECT id FROM generations WHERE team_id = $1', [teamId]),
    );
    expect(left.rows).toEqual([{ id: unfinished }]);
    const settled = await withUserTx(db, leaver.userId, (tx) =>
      tx.query(`UPDATE generations SET status = 'failed', completed_at = now() WHERE id = $1`, [unfinished]),
    );
    expect(settled.rowCount).toBe(1);
    const others = await count(
      db,
      leaver,
      'SELECT count(*)::int AS n FROM generations WHERE team_id = $1 AND user_id <> $2',
      [teamId, leaver.userId],
    );
    expect(others).toBe(0);
    // And it cannot spend the team's credit any more.
    await expect(
      withUserTx(db, leaver.userId, (tx) =>
        ledger.reserve(tx, {
          id: randomUUID(),
          amount: 1,
          generationId: null,
          deadline: new Date(Date.now() + 60_000),
          teamId,
        }),
      ),
    ).rejects.toMatchObject({ code: 'not_found' });
  });
});
