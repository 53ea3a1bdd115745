import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../lib/auth/api-keys';
import { withUserTx } from '../../lib/db/pool';
import { createUser, startApi, type ApiHarness } from '../support/context';
import { addMember, createTeam, removeMember } from '../support/teams';

type User = Awaited<ReturnType<typeof createUser>>;
type Who = { auth: Record<string, string> };

/**
 * Team projects (issue 13, "Shared work"): made by members, seen by every member, changed by their
 * maker or an admin; viewers read only; outsiders and removed members get 404.
 */
describe('team projects', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi();
  });
  afterAll(() => h?.stop());

  async function team() {
    const owner = await createUser(h.db);
    const teamId = await createTeam(h.db, owner.userId);
    const users: Record<'admin' | 'member' | 'other' | 'viewer', User> = {
      admin: await createUser(h.db),
      member: await createUser(h.db),
      other: await createUser(h.db),
      viewer: await createUser(h.db),
    };
    await addMember(h.db, teamId, owner.userId, users.admin, 'admin');
    await addMember(h.db, teamId, owner.userId, users.member, 'member');
    await addMember(h.db, teamId, owner.userId, users.other, 'member');
    await addMember(h.db, teamId, owner.userId, users.viewer, 'viewer');
    return { teamId, owner, ...users, outsider: await createUser(h.db) };
  }

  const call = (who: Who, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    h.app.inject({ method, url, headers: who.auth, ...(payload ? { payload } : {}) });
  const create = (who: Who, payload: object) => call(who, 'POST', '/v1/projects', payload);
  const count = async (teamId: string) =>
    (await h.systemDb.query('SELECT count(*)::int AS n FROM projects WHERE team_id = $1', [teamId])).rows[0]
      .n;

  it('members create team projects; a viewer gets 403 and an outsider 404, with nothing written', async () => {
    const t = await team();
    const res = await create(t.member, { name: 'Campaign', teamId: t.teamId });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ name: 'Campaign', teamId: t.teamId, createdBy: t.member.userId });
    expect(res.headers.location).toBe(`/v1/projects/${res.json().id}`);

    const viewer = await create(t.viewer, { name: 'nope', teamId: t.teamId });
    expect(viewer.statusCode).toBe(403);
    expect(viewer.json()).toMatchObject({ code: 'forbidden', requiredRole: 'member' });
    const outsider = await create(t.outsider, { name: 'nope', teamId: t.teamId });
    expect(outsider.statusCode).toBe(404);
    expect(outsider.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });
    const malformed = await create(t.member, { name: 'nope', teamId: 'team-1' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().detail).toContain('teamId');
    expect(await count(t.teamId)).toBe(1);
  });

  it('lists a team’s projects to any member with teamId; without it, personal ones only', async () => {
    const t = await team();
    const shared = (await create(t.member, { name: 'shared', teamId: t.teamId })).json();
    const mine = (await create(t.member, { name: 'mine' })).json();
    expect(mine.teamId).toBeNull();
    for (const who of [t.owner, t.admin, t.member, t.viewer]) {
      const list = await call(who, 'GET', `/v1/projects?teamId=${t.teamId}`);
      expect(list.json().data.map((p: { id: string }) => p.id)).toEqual([shared.id]);
      expect((await call(who, 'GET', `/v1/projects/${shared.id}`)).json().id).toBe(shared.id);
    }
    expect(
      (await call(t.member, 'GET', '/v1/projects')).json().data.map((p: { id: string }) => p.id),
    ).toEqual([mine.id]);
    expect((await call(t.owner, 'GET', '/v1/projects')).json().data).toEqual([]);
    expect((await call(t.outsider, 'GET', `/v1/projects?teamId=${t.teamId}`)).statusCode).toBe(404);
    expect((await call(t.outsider, 'GET', `/v1/projects/${shared.id}`)).statusCode).toBe(404);
    expect((await call(t.admin, 'GET', `/v1/projects/${mine.id}`)).statusCode).toBe(404);
  });

  it('its maker or an admin changes and deletes it; a viewer or another member gets 403, an outsider 404', async () => {
    const t = await team();
    const project = (await create(t.member, { name: 'p', teamId: t.teamId })).json();
    const url = `/v1/projects/${project.id}`;
    const cases: [Who, number, string?][] = [
      [t.outsider, 404],
      [t.viewer, 403, 'admin'],
      [t.other, 403, 'admin'],
    ];
    for (const [who, status, requiredRole] of cases) {
      const rename = await call(who, 'PATCH', url, { name: 'taken' });
      expect(rename.statusCode).toBe(status);
      const del = await call(who, 'DELETE', url);
      expect(del.statusCode).toBe(status);
      if (requiredRole) expect(rename.json()).toMatchObject({ code: 'forbidden', requiredRole });
    }
    expect((await call(t.member, 'GET', url)).json().name).toBe('p');

    expect((await call(t.member, 'PATCH', url, { name: 'by maker' })).json().name).toBe('by maker');
    expect((await call(t.admin, 'PATCH', url, { name: 'by admin' })).json().name).toBe('by admin');
    expect((await call(t.admin, 'DELETE', url)).statusCode).toBe(204);
    expect((await call(t.member, 'GET', url)).statusCode).toBe(404);

    // A member demoted to viewer no longer changes even its own.
    const own = (await create(t.other, { name: 'own', teamId: t.teamId })).json();
    await h.systemDb.query("UPDATE team_members SET role = 'viewer' WHERE team_id = $1 AND user_id = $2", [
      t.teamId,
      t.other.userId,
    ]);
    const demoted = await call(t.other, 'DELETE', `/v1/projects/${own.id}`);
    expect(demoted.statusCode).toBe(403);
    expect(demoted.json()).toMatchObject({ requiredRole: 'member' });
  });

  it("a team key's projects are its team's", async () => {
    const t = await team();
    const key = generateApiKey();
    await withUserTx(h.db, t.owner.userId, (tx) =>
      tx.query('SELECT create_team_api_key($1, $2, $3, $4)', [t.teamId, 'ci', key.prefix, key.hash]),
    );
    const bot = { auth: { authorization: `Bearer ${key.key}` } };
    const res = await create(bot, { name: 'by key' });
    expect(res.statusCode).toBe(201);
    expect(res.json().teamId).toBe(t.teamId);
    expect((await call(bot, 'GET', '/v1/projects')).json().data.map((p: { id: string }) => p.id)).toEqual([
      res.json().id,
    ]);
  });

  it('a removed member loses the team’s projects at once, by key and by login token', async () => {
    const t = await team();
    const project = (await create(t.member, { name: 'p', teamId: t.teamId })).json();
    const { token } = h.app.issueToken({ id: t.member.userId, role: 'user' });
    const login = { auth: { authorization: `Bearer ${token}` } };
    await removeMember(t.teamId, t.member.userId);
    for (const who of [t.member, login]) {
      expect((await call(who, 'GET', `/v1/projects/${project.id}`)).statusCode).toBe(404);
      expect((await call(who, 'PATCH', `/v1/projects/${project.id}`, { name: 'x' })).statusCode).toBe(404);
      expect((await call(who, 'DELETE', `/v1/projects/${project.id}`)).statusCode).toBe(404);
      expect((await call(who, 'GET', `/v1/projects?teamId=${t.teamId}`)).statusCode).toBe(404);
      expect((await create(who, { name: 'x', teamId: t.teamId })).statusCode).toBe(404);
    }
    // The team keeps it.
    expect((await call(t.admin, 'GET', `/v1/projects/${project.id}`)).json().createdBy).toBe(t.member.userId);
    expect(await count(t.teamId)).toBe(1);
  });
});
