import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../lib/auth/api-keys';
import { withSystemTx, withUserTx } from '../../lib/db/pool';
import type { TeamRole } from '../../lib/teams/roles';
import { createUser, startApi, systemDb, type ApiHarness } from '../support/context';
import { createTeam, grantTeam } from '../support/teams';

type User = Awaited<ReturnType<typeof createUser>>;

/** Teams, members and ownership through the API (POST/GET/PATCH/DELETE /v1/teams…). */
describe('teams and members', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi({ RATE_LIMIT_MAX: '1000000' });
  });
  afterAll(() => api?.stop());

  const as = (user: User, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    api.app.inject({ method, url, headers: user.auth, ...(payload ? { payload } : {}) });

  /** Puts `user` in the team with `role` at system level (what an accepted invitation does). */
  const join = (teamId: string, user: User, role: Exclude<TeamRole, 'owner'>) =>
    withSystemTx(systemDb(), (tx) =>
      tx.query('INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)', [
        teamId,
        user.userId,
        role,
      ]),
    );

  /** A team owned by a new user, with a new admin, member and viewer. */
  async function team() {
    const [owner, admin, member, viewer, outsider] = await Promise.all(
      Array.from({ length: 5 }, () => createUser(api.db)),
    );
    const created = await as(owner!, 'POST', '/v1/teams', { name: 'Studio' });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    await join(id, admin!, 'admin');
    await join(id, member!, 'member');
    await join(id, viewer!, 'viewer');
    return { id, owner: owner!, admin: admin!, member: member!, viewer: viewer!, outsider: outsider! };
  }

  const memberRow = (teamId: string, userId: string) =>
    systemDb()
      .query('SELECT role, monthly_spend_limit FROM team_members WHERE team_id = $1 AND user_id = $2', [
        teamId,
        userId,
      ])
      .then((r) => r.rows[0]);

  /** A team key of the team, made by its owner, as POST /v1/teams/:id/api-keys makes one. */
  async function teamKey(teamId: string, ownerId: string) {
    const key = generateApiKey();
    const { rows } = await withUserTx(api.db, ownerId, (tx) =>
      tx.query<{ id: string }>('SELECT create_team_api_key($1, $2, $3, $4) AS id', [
        teamId,
        'ci',
        key.prefix,
        key.hash,
      ]),
    );
    const bot = await systemDb().query<{ user_id: string }>('SELECT user_id FROM api_keys WHERE id = $1', [
      rows[0]!.id,
    ]);
    return { auth: { authorization: `Bearer ${key.key}` }, botId: bot.rows[0]!.user_id };
  }

  it('creates a team with the caller as owner, and shows it to members only', async () => {
    const owner = await createUser(api.db);
    const outsider = await createUser(api.db);
    const res = await as(owner, 'POST', '/v1/teams', { name: '  Studio Nord ' });
    expect(res.statusCode).toBe(201);
    const t = res.json();
    expect(t).toEqual({
      id: expect.any(String),
      name: 'Studio Nord',
      role: 'owner',
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    expect(res.headers.location).toBe(`/v1/teams/${t.id}`);
    expect((await as(owner, 'GET', `/v1/teams/${t.id}`)).json()).toEqual(t);

    const hidden = await as(outsider, 'GET', `/v1/teams/${t.id}`);
    expect(hidden.statusCode).toBe(404);
    expect(hidden.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });
    // Same answer as for a team that does not exist.
    expect((await as(outsider, 'GET', `/v1/teams/${randomUUID()}`)).json().detail).toBe('Team not found.');
    expect((await as(outsider, 'GET', '/v1/teams')).json()).toEqual({ data: [], nextCursor: null });

    // The team has its own (empty) credit account; the owner is its one member.
    const account = await systemDb().query('SELECT credits_posted FROM credit_accounts WHERE team_id = $1', [
      t.id,
    ]);
    expect(account.rows).toEqual([{ credits_posted: 0 }]);
    expect(await memberRow(t.id, owner.userId)).toEqual({ role: 'owner', monthly_spend_limit: null });
  });

  it('refuses a bad team name, naming the field, and writes nothing', async () => {
    const owner = await createUser(api.db);
    for (const body of [
      {},
      { name: '' },
      { name: '   ' },
      { name: 'x'.repeat(101) },
      { name: 7 },
      { name: 'a', extra: 1 },
    ]) {
      const res = await as(owner, 'POST', '/v1/teams', body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
      expect(
        res
          .json()
          .errors.map((e: { path: string }) => e.path)
          .join(),
        JSON.stringify(body),
      ).toMatch(/^body/);
    }
    const made = await systemDb().query('SELECT count(*)::int AS n FROM teams WHERE created_by = $1', [
      owner.userId,
    ]);
    expect(made.rows[0].n).toBe(0);
  });

  it('lists the caller’s live teams with its role, paginated newest first', async () => {
    const me = await createUser(api.db);
    const other = await createUser(api.db);
    const mine: string[] = [];
    for (const name of ['a', 'b', 'c']) mine.push((await as(me, 'POST', '/v1/teams', { name })).json().id);
    const theirs = await createTeam(api.db, other.userId, 'theirs');
    await join(theirs, me, 'viewer');
    const doomed = (await as(me, 'POST', '/v1/teams', { name: 'doomed' })).json().id;
    expect((await as(me, 'DELETE', `/v1/teams/${doomed}`)).statusCode).toBe(204);

    const seen: { id: string; role: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await as(me, 'GET', `/v1/teams?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      const page = res.json() as { data: { id: string; role: string }[]; nextCursor: string | null };
      seen.push(...page.data);
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(2);
    expect(seen.map((t) => t.id)).toEqual([theirs, ...mine.reverse()]);
    expect(seen.map((t) => t.role)).toEqual(['viewer', 'owner', 'owner', 'owner']);
  });

  it('renames a team for admins and the owner only', async () => {
    const t = await team();
    const renamed = await as(t.admin, 'PATCH', `/v1/teams/${t.id}`, { name: 'Studio Süd' });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json()).toMatchObject({ id: t.id, name: 'Studio Süd', role: 'admin' });
    expect((await as(t.owner, 'GET', `/v1/teams/${t.id}`)).json().name).toBe('Studio Süd');

    const refused = await as(t.member, 'PATCH', `/v1/teams/${t.id}`, { name: 'Mine' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
    expect((await as(t.outsider, 'PATCH', `/v1/teams/${t.id}`, { name: 'Mine' })).statusCode).toBe(404);
    const bad = await as(t.owner, 'PATCH', `/v1/teams/${t.id}`, { name: '' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].path).toBe('body.name');
    expect((await as(t.owner, 'GET', `/v1/teams/${t.id}`)).json().name).toBe('Studio Süd');
  });

  it('deletes a team (owner only), refused while it holds credits or has generations in flight', async () => {
    const t = await team();
    for (const who of [t.admin, t.member]) {
      const res = await as(who, 'DELETE', `/v1/teams/${t.id}`);
      expect(res.statusCode).toBe(403);
      expect(res.json().requiredRole).toBe('owner');
    }

    await grantTeam(t.id, 100);
    const withCredits = await as(t.owner, 'DELETE', `/v1/teams/${t.id}`);
    expect(withCredits.statusCode).toBe(409);
    expect(withCredits.json().code).toBe('team_has_credits');

    // The member reserves all of it: now a reservation is in flight.
    const reserveId = randomUUID();
    await withUserTx(api.db, t.member.userId, (tx) =>
      tx.query('SELECT ledger_reserve_team($1, 100, NULL, $2, $3)', [
        reserveId,
        new Date(Date.now() + 3600_000),
        t.id,
      ]),
    );
    const inFlight = await as(t.owner, 'DELETE', `/v1/teams/${t.id}`);
    expect(inFlight.statusCode).toBe(409);
    expect(inFlight.json().code).toBe('team_has_generations_in_flight');
    expect(inFlight.json().detail).toMatch(/in flight/);
    // Nothing partial: the team and its members are as they were.
    expect((await as(t.viewer, 'GET', `/v1/teams/${t.id}`)).statusCode).toBe(200);
    expect((await as(t.owner, 'GET', `/v1/teams/${t.id}/members`)).json().data).toHaveLength(4);

    await withUserTx(api.db, t.member.userId, (tx) =>
      tx.query('SELECT ledger_commit($1, $2)', [randomUUID(), reserveId]),
    );
    const key = await teamKey(t.id, t.owner.userId);
    expect((await as(t.owner, 'DELETE', `/v1/teams/${t.id}`)).statusCode).toBe(204);

    for (const who of [t.owner, t.member]) {
      expect((await as(who, 'GET', `/v1/teams/${t.id}`)).statusCode).toBe(404);
      expect((await as(who, 'GET', '/v1/teams')).json().data).toEqual([]);
    }
    expect((await as(t.owner, 'DELETE', `/v1/teams/${t.id}`)).statusCode).toBe(404);
    // Its key ends with it; its ledger stays as history.
    expect((await api.app.inject({ url: '/v1/teams', headers: key.auth })).statusCode).toBe(401);
    const members = await systemDb().query('SELECT count(*)::int AS n FROM team_members WHERE team_id = $1', [
      t.id,
    ]);
    expect(members.rows[0].n).toBe(0);
    const ledger = await systemDb().query(
      'SELECT kind FROM credit_transfers WHERE team_id = $1 ORDER BY created_at',
      [t.id],
    );
    expect(ledger.rows.map((r) => r.kind)).toEqual(['grant', 'reserve', 'commit']);
  });

  it('lists members (people, not team keys) to every member', async () => {
    const t = await team();
    await teamKey(t.id, t.owner.userId);
    // Joined a second apart, so that newest first is one order (joins within a millisecond tie).
    await systemDb().query(
      `UPDATE team_members m SET created_at = now() - make_interval(secs => o.n)
       FROM unnest($2::uuid[]) WITH ORDINALITY AS o(user_id, n) WHERE m.team_id = $1 AND m.user_id = o.user_id`,
      [t.id, [t.viewer.userId, t.member.userId, t.admin.userId, t.owner.userId]],
    );
    for (const who of [t.owner, t.viewer]) {
      const res = await as(who, 'GET', `/v1/teams/${t.id}/members`);
      expect(res.statusCode).toBe(200);
      const { data } = res.json() as { data: { userId: string; role: string }[] };
      expect(data.map((m) => [m.userId, m.role]).sort()).toEqual(
        [
          [t.owner.userId, 'owner'],
          [t.admin.userId, 'admin'],
          [t.member.userId, 'member'],
          [t.viewer.userId, 'viewer'],
        ].sort(),
      );
    }
    const first = (await as(t.member, 'GET', `/v1/teams/${t.id}/members?limit=3`)).json();
    expect(first.data).toHaveLength(3);
    expect(first.data[0]).toEqual({
      userId: t.viewer.userId,
      email: t.viewer.email,
      role: 'viewer',
      monthlySpendLimit: null,
      joinedAt: expect.any(String),
    });
    const second = (
      await as(t.member, 'GET', `/v1/teams/${t.id}/members?limit=3&cursor=${first.nextCursor}`)
    ).json();
    expect(second).toMatchObject({ data: [{ userId: t.owner.userId }], nextCursor: null });
    expect((await as(t.outsider, 'GET', `/v1/teams/${t.id}/members`)).statusCode).toBe(404);
  });

  it("changes a member's role and spend limit (admin+), never above the caller nor the owner's", async () => {
    const t = await team();
    const url = (u: User) => `/v1/teams/${t.id}/members/${u.userId}`;

    const promoted = await as(t.admin, 'PATCH', url(t.member), { role: 'admin', monthlySpendLimit: 5000 });
    expect(promoted.statusCode).toBe(200);
    expect(promoted.json()).toEqual({
      userId: t.member.userId,
      email: t.member.email,
      role: 'admin',
      monthlySpendLimit: 5000,
      joinedAt: expect.any(String),
    });
    const cleared = await as(t.owner, 'PATCH', url(t.member), { monthlySpendLimit: null });
    expect(cleared.json()).toMatchObject({ role: 'admin', monthlySpendLimit: null });
    expect((await as(t.admin, 'PATCH', url(t.member), { role: 'member' })).json().role).toBe('member');

    // Too low a role: 403 naming the role needed.
    for (const who of [t.member, t.viewer]) {
      const res = await as(who, 'PATCH', url(t.viewer), { role: 'member' });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
    }
    // An admin cannot touch the owner, in role or limit; nothing is written.
    const aboveMe = await as(t.admin, 'PATCH', url(t.owner), { role: 'viewer', monthlySpendLimit: 10 });
    expect(aboveMe.statusCode).toBe(403);
    expect(aboveMe.json()).toMatchObject({ code: 'forbidden', requiredRole: 'owner' });
    expect((await as(t.admin, 'PATCH', url(t.owner), { monthlySpendLimit: 10 })).statusCode).toBe(403);
    expect(await memberRow(t.id, t.owner.userId)).toEqual({ role: 'owner', monthly_spend_limit: null });
    // The owner's role moves only by transfer; its limit it may set.
    const ownRole = await as(t.owner, 'PATCH', url(t.owner), { role: 'admin' });
    expect(ownRole.statusCode).toBe(409);
    expect(ownRole.json().code).toBe('owner_required');
    expect((await as(t.owner, 'PATCH', url(t.owner), { monthlySpendLimit: 100 })).json()).toMatchObject({
      role: 'owner',
      monthlySpendLimit: 100,
    });

    expect((await as(t.outsider, 'PATCH', url(t.member), { role: 'viewer' })).statusCode).toBe(404);
    const unknown = await as(t.owner, 'PATCH', `/v1/teams/${t.id}/members/${randomUUID()}`, {
      role: 'viewer',
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().detail).toBe('Member not found.');
    const stranger = await as(t.owner, 'PATCH', url(t.outsider), { role: 'viewer' });
    expect(stranger.json().detail).toBe('Member not found.');
    // A team key's bot is managed as its key, not as a member.
    const key = await teamKey(t.id, t.owner.userId);
    const bot = await as(t.owner, 'PATCH', `/v1/teams/${t.id}/members/${key.botId}`, { role: 'admin' });
    expect(bot.statusCode).toBe(404);
  });

  it('refuses a bad member change with 400 naming the field, writing nothing', async () => {
    const t = await team();
    const url = `/v1/teams/${t.id}/members/${t.member.userId}`;
    const owner = await as(t.owner, 'PATCH', url, { role: 'owner' });
    expect(owner.statusCode).toBe(400);
    expect(owner.json().errors).toEqual([
      { path: 'body.role', message: expect.stringContaining('transfer-ownership') },
    ]);
    const cases: [object, string][] = [
      [{ role: 'boss' }, 'body.role'],
      [{ monthlySpendLimit: -1 }, 'body.monthlySpendLimit'],
      [{ monthlySpendLimit: 1.5 }, 'body.monthlySpendLimit'],
      [{ monthlySpendLimit: 1e12 + 1 }, 'body.monthlySpendLimit'],
      [{ monthlySpendLimit: '100' }, 'body.monthlySpendLimit'],
      [{ role: 'viewer', monthlySpendLimit: -5 }, 'body.monthlySpendLimit'],
      [{ role: 'viewer', admin: true }, 'body'],
      [{}, 'body'],
    ];
    for (const [body, path] of cases) {
      const res = await as(t.owner, 'PATCH', url, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      const paths = res.json().errors.map((e: { path: string }) => e.path.replace(/\.$/, ''));
      expect(paths, JSON.stringify(body)).toContain(path);
    }
    expect(
      (await as(t.owner, 'PATCH', `/v1/teams/${t.id}/members/nope`, { role: 'viewer' })).statusCode,
    ).toBe(400);
    expect(await memberRow(t.id, t.member.userId)).toEqual({ role: 'member', monthly_spend_limit: null });
    expect((await as(t.owner, 'PATCH', url, { monthlySpendLimit: 1e12 })).json().monthlySpendLimit).toBe(
      1e12,
    );
  });

  it('accepts a limit below what is already spent this month; it stops new reservations', async () => {
    const t = await team();
    await grantTeam(t.id, 1000);
    const reserve = (amount: number) =>
      withUserTx(api.db, t.member.userId, (tx) =>
        tx.query('SELECT ledger_reserve_team($1, $2, NULL, $3, $4)', [
          randomUUID(),
          amount,
          new Date(Date.now() + 3600_000),
          t.id,
        ]),
      );
    await reserve(60);
    const res = await as(t.admin, 'PATCH', `/v1/teams/${t.id}/members/${t.member.userId}`, {
      monthlySpendLimit: 50,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().monthlySpendLimit).toBe(50);
    await expect(reserve(1)).rejects.toMatchObject({ code: 'VL429' });
  });

  it('removes members: anyone itself, admins others, never the owner', async () => {
    const t = await team();
    const url = (u: User) => `/v1/teams/${t.id}/members/${u.userId}`;
    const other = await createUser(api.db);
    await join(t.id, other, 'member');

    const byMember = await as(t.member, 'DELETE', url(t.viewer));
    expect(byMember.statusCode).toBe(403);
    expect(byMember.json().requiredRole).toBe('admin');
    const ownerLeaves = await as(t.owner, 'DELETE', url(t.owner));
    expect(ownerLeaves.statusCode).toBe(409);
    expect(ownerLeaves.json().code).toBe('owner_cannot_leave');
    const ownerRemoved = await as(t.admin, 'DELETE', url(t.owner));
    expect(ownerRemoved.statusCode).toBe(403);
    expect(ownerRemoved.json().requiredRole).toBe('owner');
    expect(await memberRow(t.id, t.owner.userId)).toMatchObject({ role: 'owner' });

    expect((await as(t.viewer, 'DELETE', url(t.viewer))).statusCode).toBe(204);
    expect((await as(t.viewer, 'GET', `/v1/teams/${t.id}`)).statusCode).toBe(404);
    expect((await as(t.viewer, 'DELETE', url(t.viewer))).statusCode).toBe(404);
    expect((await as(t.admin, 'DELETE', url(t.member))).statusCode).toBe(204);
    // Removal takes effect at once: the next request of the removed member is an outsider's.
    expect((await as(t.member, 'GET', `/v1/teams/${t.id}/members`)).statusCode).toBe(404);
    expect((await as(t.owner, 'DELETE', url(t.admin))).statusCode).toBe(204);
    const gone = await as(t.owner, 'DELETE', url(t.member));
    expect(gone.statusCode).toBe(404);
    expect(gone.json().detail).toBe('Member not found.');
    expect((await as(t.outsider, 'DELETE', url(other))).json().detail).toBe('Team not found.');

    const left = (await as(t.owner, 'GET', `/v1/teams/${t.id}/members`)).json().data;
    expect(left.map((m: { userId: string }) => m.userId).sort()).toEqual(
      [t.owner.userId, other.userId].sort(),
    );
  });

  it('transfers ownership (owner only) to a member person; the old owner becomes admin', async () => {
    const t = await team();
    const url = `/v1/teams/${t.id}/transfer-ownership`;
    const byAdmin = await as(t.admin, 'POST', url, { userId: t.admin.userId });
    expect(byAdmin.statusCode).toBe(403);
    expect(byAdmin.json().requiredRole).toBe('owner');
    expect((await as(t.outsider, 'POST', url, { userId: t.outsider.userId })).statusCode).toBe(404);
    for (const userId of [t.outsider.userId, randomUUID(), (await teamKey(t.id, t.owner.userId)).botId]) {
      const res = await as(t.owner, 'POST', url, { userId });
      expect(res.statusCode).toBe(404);
      expect(res.json().detail).toBe('Member not found.');
    }
    for (const body of [{}, { userId: 'nope' }, { userId: t.viewer.userId, role: 'x' }]) {
      const res = await as(t.owner, 'POST', url, body);
      expect(res.statusCode).toBe(400);
      expect(res.json().errors[0].path).toMatch(/^body/);
    }
    expect(await memberRow(t.id, t.owner.userId)).toMatchObject({ role: 'owner' });

    const moved = await as(t.owner, 'POST', url, { userId: t.viewer.userId });
    expect(moved.statusCode).toBe(200);
    expect(moved.json()).toMatchObject({ id: t.id, role: 'admin' });
    expect((await as(t.viewer, 'GET', `/v1/teams/${t.id}`)).json().role).toBe('owner');
    expect(await memberRow(t.id, t.owner.userId)).toMatchObject({ role: 'admin' });
    // The old owner has an admin's rights now, no more: it cannot take the role back or delete the team.
    expect((await as(t.owner, 'POST', url, { userId: t.owner.userId })).statusCode).toBe(403);
    expect((await as(t.owner, 'DELETE', `/v1/teams/${t.id}`)).statusCode).toBe(403);
    expect(
      (await as(t.owner, 'PATCH', `/v1/teams/${t.id}/members/${t.viewer.userId}`, { role: 'admin' }))
        .statusCode,
    ).toBe(403);
    const owners = await systemDb().query(
      "SELECT user_id FROM team_members WHERE team_id = $1 AND role = 'owner'",
      [t.id],
    );
    expect(owners.rows).toEqual([{ user_id: t.viewer.userId }]);
  });

  it('a team key reads its team but cannot create teams', async () => {
    const owner = await createUser(api.db);
    const teamId = await createTeam(api.db, owner.userId);
    const key = await teamKey(teamId, owner.userId);
    const res = await api.app.inject({
      method: 'POST',
      url: '/v1/teams',
      headers: key.auth,
      payload: { name: 'x' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe('forbidden');
    const list = await api.app.inject({ url: '/v1/teams', headers: key.auth });
    expect(list.json().data).toMatchObject([{ id: teamId, role: 'member' }]);
  });
});
