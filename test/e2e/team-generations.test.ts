import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../lib/auth/api-keys';
import { withUserTx } from '../../lib/db/pool';
import { generationWorkflowId, TeamIdKey } from '../../workflows/definitions';
import { createUser, startHarness, submitGeneration, waitFor, type Harness } from '../support/context';
import { addMember, createTeam, grantTeam, removeMember } from '../support/teams';

type User = Awaited<ReturnType<typeof createUser>>;
type Role = 'admin' | 'member' | 'viewer';

const MODEL = 'imagen4-ultra'; // 45 credits
const COST = 45;

/**
 * Generations in a team (issue 13, "Shared work"): charged to the team's account within the
 * member's spend limit, seen by every member and nobody else, and out of reach at once for a member
 * who is removed (by key, login token and open event stream), while what it started still settles.
 */
describe('team generations', () => {
  let h: Harness;
  let base: string;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '3000' });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => h?.stop());

  /** A team with credit: its owner and one user per role asked for (each with personal credit too). */
  async function team(roles: Role[], credits = 10_000) {
    const owner = await createUser(h.db, 100);
    const teamId = await createTeam(h.db, owner.userId);
    const members: User[] = [];
    for (const role of roles) {
      const user = await createUser(h.db, 100);
      await addMember(h.db, teamId, owner.userId, user, role);
      members.push(user);
    }
    if (credits) await grantTeam(teamId, credits);
    return { teamId, owner, members };
  }

  const sys = (sql: string, params: unknown[]) => h.systemDb.query(sql, params);
  const teamBalance = async (teamId: string) =>
    (
      await sys('SELECT available, debits_pending AS reserved FROM credit_balances WHERE team_id = $1', [
        teamId,
      ])
    ).rows[0] as { available: number; reserved: number };
  const personal = async (user: User) =>
    (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json().available as number;
  const get = (user: { auth: Record<string, string> }, url: string) =>
    h.app.inject({ url, headers: user.auth });
  const submit = (user: { auth: Record<string, string> }, payload: Record<string, unknown>, headers = {}) =>
    h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: { ...user.auth, ...headers },
      payload: { model: MODEL, input: { prompt: 'team work' }, ...payload },
    });
  const until = (user: User, id: string, done: (g: { status: string }) => boolean) =>
    waitFor(async () => (await get(user, `/v1/generations/${id}`)).json(), done);

  it("charges a member's generation to the team (its creator recorded), seen by every member", async () => {
    const { teamId, owner, members } = await team(['member', 'viewer']);
    const [member, viewer] = members as [User, User];
    const res = await submit(member, { teamId }, { prefer: 'wait=30' });
    expect(res.statusCode).toBe(200);
    const g = res.json();
    expect(g).toMatchObject({
      status: 'succeeded',
      teamId,
      createdBy: member.userId,
      credits: { state: 'charged' },
    });

    expect(await teamBalance(teamId)).toEqual({ available: 10_000 - COST, reserved: 0 });
    expect(await personal(member)).toBe(100);
    const lines = await sys(
      'SELECT kind, user_id, team_id FROM credit_transfers WHERE generation_id = $1 ORDER BY kind',
      [g.id],
    );
    expect(lines.rows).toEqual([
      { kind: 'commit', user_id: member.userId, team_id: teamId },
      { kind: 'reserve', user_id: member.userId, team_id: teamId },
    ]);
    const description = await h.temporal.workflow.getHandle(generationWorkflowId(g.id)).describe();
    expect(description.typedSearchAttributes.get(TeamIdKey)).toBe(teamId);

    // Every member sees it and its output (a viewer too); the personal lists stay personal.
    for (const user of [owner, viewer]) {
      expect((await get(user, `/v1/generations/${g.id}`)).json().id).toBe(g.id);
      expect(
        (await get(user, `/v1/generations?teamId=${teamId}`)).json().data.map((x: { id: string }) => x.id),
      ).toEqual([g.id]);
      const asset = await get(user, `/v1/assets/${g.outputs[0].id}`);
      expect(asset.statusCode).toBe(200);
      expect(asset.headers['content-type']).toBe('image/png');
    }
    expect((await get(member, '/v1/generations')).json().data).toEqual([]);

    // A team key's generations are its team's by default, made by the key's own user.
    const key = generateApiKey();
    const keyId = await withUserTx(h.db, owner.userId, async (tx) => {
      const { rows } = await tx.query<{ id: string }>('SELECT create_team_api_key($1, $2, $3, $4) AS id', [
        teamId,
        'ci',
        key.prefix,
        key.hash,
      ]);
      return rows[0]!.id;
    });
    const keyUser = (await sys('SELECT user_id FROM api_keys WHERE id = $1', [keyId])).rows[0]
      .user_id as string;
    const bot = { auth: { authorization: `Bearer ${key.key}` } };
    const byKey = await submit(bot, {});
    expect(byKey.statusCode).toBe(202);
    expect(byKey.json()).toMatchObject({ teamId, createdBy: keyUser });
    expect((await get(bot, '/v1/generations')).json().data.map((x: { id: string }) => x.id)).toEqual([
      byKey.json().id,
      g.id,
    ]);
  });

  it('refuses a viewer with 403 (requiredRole member) and outsiders with 404, writing nothing', async () => {
    const { teamId, owner, members } = await team(['viewer']);
    const viewer = members[0]!;
    const outsider = await createUser(h.db, 100);
    const res = await submit(viewer, { teamId });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'forbidden', requiredRole: 'member' });
    const refused = await submit(outsider, { teamId });
    expect(refused.statusCode).toBe(404);
    expect(refused.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });
    const written = await sys(
      `SELECT (SELECT count(*)::int FROM generations WHERE team_id = $1) AS generations,
              (SELECT count(*)::int FROM credit_transfers WHERE team_id = $1 AND kind <> 'grant') AS transfers`,
      [teamId],
    );
    expect(written.rows[0]).toEqual({ generations: 0, transfers: 0 });
    expect(await personal(viewer)).toBe(100);

    // Nothing of the team's reaches an outsider.
    const id = await submitGeneration(h.app, owner.auth, { model: MODEL, input: { prompt: 'x' }, teamId });
    const done = await until(owner, id, (g) => g.status === 'succeeded');
    const outputId = (done as unknown as { outputs: { id: string }[] }).outputs[0]!.id;
    for (const url of [
      `/v1/generations/${id}`,
      `/v1/generations?teamId=${teamId}`,
      `/v1/generations/${id}/events`,
      `/v1/assets/${outputId}`,
    ]) {
      const r = await get(outsider, url);
      expect(r.statusCode, url).toBe(404);
    }
    const cancel = await h.app.inject({
      method: 'POST',
      url: `/v1/generations/${id}/cancel`,
      headers: outsider.auth,
    });
    expect(cancel.statusCode).toBe(404);
  });

  it('answers 402 spend_limit_exceeded with the limit and what is left; 20 concurrent submits admit exactly the affordable', async () => {
    const { teamId, members } = await team(['member']);
    const member = members[0]!;
    const limit = COST * 7 + 10;
    await sys('UPDATE team_members SET monthly_spend_limit = $3 WHERE team_id = $1 AND user_id = $2', [
      teamId,
      member.userId,
      limit,
    ]);
    const results = await Promise.all(Array.from({ length: 20 }, () => submit(member, { teamId })));
    const statuses = results.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 202)).toHaveLength(7);
    expect(statuses.filter((s) => s === 402)).toHaveLength(13);
    for (const r of results.filter((x) => x.statusCode === 402)) {
      expect(r.json()).toMatchObject({ code: 'spend_limit_exceeded', limit, remaining: 10 });
    }
    expect(await teamBalance(teamId)).toEqual({ available: 10_000 - 7 * COST, reserved: 7 * COST });
    const usage = await sys('SELECT used FROM team_member_usage WHERE team_id = $1 AND user_id = $2', [
      teamId,
      member.userId,
    ]);
    expect(usage.rows).toEqual([{ used: 7 * COST }]);
  });

  it('puts a generation in a team project on the team; a teamId that contradicts the project is a 400', async () => {
    const { teamId, members } = await team(['member']);
    const member = members[0]!;
    const other = await team([]);
    const project = await h.app.inject({
      method: 'POST',
      url: '/v1/projects',
      headers: member.auth,
      payload: { name: 'shared', teamId },
    });
    expect(project.statusCode).toBe(201);
    const projectId = project.json().id;
    const inProject = await submit(member, { projectId });
    expect(inProject.statusCode).toBe(202);
    expect(inProject.json()).toMatchObject({ teamId, projectId });

    const mismatch = await submit(member, { projectId, teamId: other.teamId });
    expect(mismatch.statusCode).toBe(400);
    expect(mismatch.json().errors[0].path).toBe('teamId');
    expect(mismatch.json().detail).toContain(projectId);

    const own = (
      await h.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: member.auth,
        payload: { name: 'mine' },
      })
    ).json();
    const personalWithTeam = await submit(member, { projectId: own.id, teamId });
    expect(personalWithTeam.statusCode).toBe(400);
    expect(personalWithTeam.json().errors[0].path).toBe('teamId');
    const malformed = await submit(member, { teamId: 'not-a-team' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().detail).toContain('teamId');
    expect(
      (await sys('SELECT count(*)::int AS n FROM generations WHERE user_id = $1', [member.userId])).rows[0].n,
    ).toBe(1);
  });

  it('lets the creator or an admin cancel a team generation; another member or a viewer gets 403', async () => {
    const { teamId, members } = await team(['admin', 'member', 'member', 'viewer']);
    const [admin, creator, other, viewer] = members as [User, User, User, User];
    const a = await submitGeneration(h.app, creator.auth, { model: MODEL, input: { prompt: 'a' }, teamId });
    const b = await submitGeneration(h.app, creator.auth, { model: MODEL, input: { prompt: 'b' }, teamId });
    const cancel = (user: User, id: string) =>
      h.app.inject({ method: 'POST', url: `/v1/generations/${id}/cancel`, headers: user.auth });

    const byOther = await cancel(other, a);
    expect(byOther.statusCode).toBe(403);
    expect(byOther.json()).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
    expect((await cancel(viewer, a)).json()).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
    const byCreator = await cancel(creator, a);
    expect(byCreator.statusCode).toBe(202);
    const byAdmin = await cancel(admin, b);
    expect(byAdmin.statusCode).toBe(202);
    for (const id of [a, b]) {
      const g = await until(creator, id, (x) => x.status === 'canceled');
      expect(g).toMatchObject({ credits: { state: 'refunded' } });
    }
    expect(await teamBalance(teamId)).toEqual({ available: 10_000, reserved: 0 });
    const usage = await sys('SELECT used FROM team_member_usage WHERE team_id = $1 AND user_id = $2', [
      teamId,
      creator.userId,
    ]);
    expect(usage.rows).toEqual([{ used: 0 }]);
  });

  it('removal takes effect at once: key, login token and open stream; what the member started still settles', async () => {
    const { teamId, owner, members } = await team(['admin', 'member']);
    const [admin, member] = members as [User, User];
    const charged = await submitGeneration(h.app, member.auth, {
      model: MODEL,
      input: { prompt: 'kept' },
      teamId,
    });
    const refunded = await submitGeneration(h.app, member.auth, {
      model: MODEL,
      input: { prompt: 'dropped' },
      teamId,
    });
    const { token } = h.app.issueToken({ id: member.userId, role: 'user' });
    const login = { auth: { authorization: `Bearer ${token}` } };
    const projectId = (
      await h.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: member.auth,
        payload: { name: 'p', teamId },
      })
    ).json().id;

    // The member watches its generation over real HTTP; the stream is open when it is removed.
    const stream = await fetch(`${base}/v1/generations/${charged}/events`, {
      headers: member.auth,
      signal: AbortSignal.timeout(20_000),
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: status')) text += decoder.decode((await reader.read()).value);

    await removeMember(teamId, member.userId);
    const removedAt = Date.now();
    // An admin cancels the other one while it runs: it is refunded to the team, as its creator.
    const byAdmin = await h.app.inject({
      method: 'POST',
      url: `/v1/generations/${refunded}/cancel`,
      headers: admin.auth,
    });
    expect(byAdmin.statusCode).toBe(202);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(Date.now() - removedAt).toBeLessThan(5000);
    expect(text).toContain('event: error\ndata: {"code":"not_found"');
    expect(text).not.toContain('event: done');

    for (const who of [member, login]) {
      for (const url of [
        `/v1/generations/${charged}`,
        `/v1/generations?teamId=${teamId}`,
        `/v1/generations/${charged}/events`,
        `/v1/projects/${projectId}`,
        `/v1/projects?teamId=${teamId}`,
      ]) {
        expect((await get(who, url)).statusCode, url).toBe(404);
      }
      expect((await submit(who, { teamId })).statusCode).toBe(404);
      expect((await submit(who, { projectId })).statusCode).toBe(404);
      const cancel = await h.app.inject({
        method: 'POST',
        url: `/v1/generations/${refunded}/cancel`,
        headers: who.auth,
      });
      expect(cancel.statusCode).toBe(404);
    }

    // What it started settles on the team's account: one charged, one refunded.
    await until(owner, charged, (g) => g.status === 'succeeded');
    await until(owner, refunded, (g) => g.status === 'canceled');
    expect(await teamBalance(teamId)).toEqual({ available: 10_000 - COST, reserved: 0 });
    const kinds = await sys(
      'SELECT generation_id, kind, user_id FROM credit_transfers WHERE team_id = $1 AND kind IN ($2, $3)',
      [teamId, 'commit', 'release'],
    );
    expect(kinds.rows).toHaveLength(2);
    expect(new Set(kinds.rows.map((r) => `${r.generation_id}:${r.kind}:${r.user_id}`))).toEqual(
      new Set([`${charged}:commit:${member.userId}`, `${refunded}:release:${member.userId}`]),
    );
    const usage = await sys('SELECT used FROM team_member_usage WHERE team_id = $1 AND user_id = $2', [
      teamId,
      member.userId,
    ]);
    expect(usage.rows).toEqual([{ used: COST }]);
    expect(await personal(member)).toBe(100);
    // Its output is the team's: members get it, the removed member does not.
    const outputId = (await get(owner, `/v1/generations/${charged}`)).json().outputs[0].id;
    expect((await get(owner, `/v1/assets/${outputId}`)).statusCode).toBe(200);
    expect((await get(member, `/v1/assets/${outputId}`)).statusCode).toBe(404);
  });
});
