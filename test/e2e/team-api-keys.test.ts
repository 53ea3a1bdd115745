import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ACTIVE_TEAM_API_KEYS } from '../../lib/api-keys/store';
import { generateApiKey } from '../../lib/auth/api-keys';
import { withUserTx } from '../../lib/db/pool';
import { createUser, startHarness, submitGeneration, waitFor, type Harness } from '../support/context';
import { addMember, createTeam, grantTeam, removeMember } from '../support/teams';

type User = Awaited<ReturnType<typeof createUser>>;
type Auth = { auth: Record<string, string> };

const MODEL = 'imagen4-ultra'; // 45 credits
const COST = 45;

/**
 * Team API keys (issue 13, "Team API keys"): made by admins, acting for the team as a member, charged
 * to the team, surviving their creator's removal, revoked at once; personal keys stay personal and
 * act in a team with their user's role.
 */
describe('team API keys', () => {
  let h: Harness;
  let base: string;
  beforeAll(async () => {
    // Long enough that a generation is still running when a test revokes the key watching it (the
    // streams re-check membership every 2 s; at 2 s a loaded machine saw the generation end first).
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '6000' });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => h?.stop());

  const sys = async <T>(sql: string, params: unknown[]) => (await h.systemDb.query(sql, params)).rows as T[];
  const call = (who: Auth, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    h.app.inject({ method, url, headers: who.auth, ...(payload ? { payload } : {}) });
  const bearer = (key: string): Auth => ({ auth: { authorization: `Bearer ${key}` } });

  /** A team with credit, its owner, an admin and one user per other role. */
  async function team() {
    const owner = await createUser(h.db);
    const teamId = await createTeam(h.db, owner.userId);
    const [admin, member, viewer] = [await createUser(h.db), await createUser(h.db), await createUser(h.db)];
    await addMember(h.db, teamId, owner.userId, admin, 'admin');
    await addMember(h.db, teamId, owner.userId, member, 'member');
    await addMember(h.db, teamId, owner.userId, viewer, 'viewer');
    await grantTeam(teamId, 1000);
    return { teamId, owner, admin, member, viewer, outsider: await createUser(h.db) };
  }

  async function createKey(who: User, teamId: string, name = 'render farm') {
    const res = await call(who, 'POST', `/v1/teams/${teamId}/api-keys`, { name });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { apiKey: { id: string; teamId: string; createdBy: string }; key: string };
  }

  it('is made by an admin, shown once, listed for the team only, and audited', async () => {
    const t = await team();
    const res = await call(t.admin, 'POST', `/v1/teams/${t.teamId}/api-keys`, { name: ' render farm ' });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const { apiKey, key } = res.json();
    expect(apiKey).toEqual({
      id: expect.any(String),
      name: 'render farm',
      prefix: key.slice(0, apiKey.prefix.length),
      teamId: t.teamId,
      createdBy: t.admin.userId,
      createdAt: expect.any(String),
      lastUsedAt: null,
    });
    expect(key).toMatch(/^vk_/);

    const listed = await call(t.owner, 'GET', `/v1/teams/${t.teamId}/api-keys`);
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual({ data: [apiKey], nextCursor: null });
    expect(listed.body).not.toContain(key);

    // The admins' personal lists hold their own keys only; the personal DELETE does not reach it.
    for (const who of [t.admin, t.owner]) {
      const own = (await call(who, 'GET', '/v1/api-keys')).json().data as { id: string }[];
      expect(own.map((k) => k.id)).not.toContain(apiKey.id);
      expect(own).toHaveLength(1); // createUser's key
    }
    expect((await call(t.admin, 'DELETE', `/v1/api-keys/${apiKey.id}`)).statusCode).toBe(404);
    expect((await call(bearer(key), 'GET', '/v1/me')).statusCode).toBe(200);

    const audit = await sys<{ action: string; actor_user_id: string; target_id: string; request_id: string }>(
      `SELECT action, actor_user_id, target_id, request_id FROM team_audit_events
       WHERE team_id = $1 AND target_type = 'api_key' ORDER BY created_at`,
      [t.teamId],
    );
    expect(audit).toEqual([
      {
        action: 'api_key.created',
        actor_user_id: t.admin.userId,
        target_id: apiKey.id,
        request_id: res.headers['x-request-id'],
      },
    ]);
  });

  it('is managed by admins only: 403 naming the role for members and viewers, 404 for outsiders, 400 for a bad name', async () => {
    const t = await team();
    const existing = await createKey(t.owner, t.teamId);
    for (const who of [t.member, t.viewer]) {
      for (const [method, url, body] of [
        ['POST', `/v1/teams/${t.teamId}/api-keys`, { name: 'x' }],
        ['GET', `/v1/teams/${t.teamId}/api-keys`, undefined],
        ['DELETE', `/v1/teams/${t.teamId}/api-keys/${existing.apiKey.id}`, undefined],
      ] as const) {
        const res = await call(who, method, url, body);
        expect(res.statusCode, `${method} ${url}`).toBe(403);
        expect(res.json()).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
      }
    }
    for (const teamId of [t.teamId, randomUUID()]) {
      const res = await call(t.outsider, 'POST', `/v1/teams/${teamId}/api-keys`, { name: 'x' });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });
      expect((await call(t.outsider, 'GET', `/v1/teams/${teamId}/api-keys`)).statusCode).toBe(404);
    }
    for (const body of [{ name: '' }, { name: 'x'.repeat(101) }, {}, { name: 'x', extra: 1 }]) {
      const res = await call(t.admin, 'POST', `/v1/teams/${t.teamId}/api-keys`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().code).toBe('invalid_request');
    }
    const bad = await call(t.admin, 'POST', `/v1/teams/${t.teamId}/api-keys`, { name: '' });
    expect(bad.json().errors[0].path).toMatch(/name/);
    // Nothing was made by any refusal.
    const keys = await sys<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE team_id = $1', [
      t.teamId,
    ]);
    expect(keys[0]!.n).toBe(1);
  });

  it('acts for its team as a member: reads it, generates on the team account, cannot manage keys or mint personal ones', async () => {
    const t = await team();
    const { apiKey, key } = await createKey(t.admin, t.teamId);
    const bot = bearer(key);

    const me = await call(bot, 'GET', '/v1/me');
    expect(me.statusCode).toBe(200);
    const botId = me.json().id as string;
    expect(me.json()).toMatchObject({
      kind: 'team_key',
      teamId: t.teamId,
      role: 'user',
      credits: { available: 1000, reserved: 0, spent: 0 },
    });
    expect(botId).not.toBe(t.admin.userId);
    expect((await call(t.admin, 'GET', '/v1/me')).json()).toMatchObject({ kind: 'person', teamId: null });

    const shown = await call(bot, 'GET', `/v1/teams/${t.teamId}`);
    expect(shown.statusCode).toBe(200);
    expect(shown.json()).toMatchObject({ id: t.teamId, role: 'member' });

    // Its generations are the team's (the default for a team key), made by its own user.
    const submitted = await call(bot, 'POST', '/v1/generations', {
      model: MODEL,
      input: { prompt: 'bot work' },
    });
    expect(submitted.statusCode, submitted.body).toBe(202);
    const id = submitted.json().id as string;
    const done = await waitFor(
      async () => (await call(bot, 'GET', `/v1/generations/${id}`)).json(),
      (g) => g.status === 'succeeded',
    );
    expect(done.credits).toEqual({ amount: COST, state: 'charged' });
    const [row] = await sys<{ user_id: string; team_id: string }>(
      'SELECT user_id, team_id FROM generations WHERE id = $1',
      [id],
    );
    expect(row).toEqual({ user_id: botId, team_id: t.teamId });
    // Members see it; the team paid for it.
    expect((await call(t.viewer, 'GET', `/v1/generations/${id}`)).statusCode).toBe(200);
    expect((await call(bot, 'GET', '/v1/me')).json().credits).toMatchObject({ available: 1000 - COST });

    // A member's rights, not an admin's.
    const managing = await call(bot, 'POST', `/v1/teams/${t.teamId}/api-keys`, { name: 'another' });
    expect(managing.statusCode).toBe(403);
    expect(managing.json()).toMatchObject({ requiredRole: 'admin' });
    // No personal key for the key's user: it would outlive the team key's revocation.
    const minted = await call(bot, 'POST', '/v1/api-keys', { name: 'escape' });
    expect(minted.statusCode).toBe(403);
    expect(minted.json().code).toBe('forbidden');
    // ... and the database refuses it as well, whatever the route would do.
    await expect(
      withUserTx(h.db, botId, (tx) => {
        const k = generateApiKey();
        return tx.query('INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4)', [
          botId,
          'escape',
          k.prefix,
          k.hash,
        ]);
      }),
    ).rejects.toMatchObject({ code: '42501' });
    expect((await call(bot, 'GET', '/v1/api-keys')).json().data).toEqual([]);
    // Its own key is the team's: the personal DELETE does not revoke it.
    expect((await call(bot, 'DELETE', `/v1/api-keys/${apiKey.id}`)).statusCode).toBe(404);
    // Another team is not its business.
    const other = await createTeam(h.db, t.owner.userId, 'other');
    expect((await call(bot, 'GET', `/v1/teams/${other}`)).statusCode).toBe(404);
    const elsewhere = await call(bot, 'POST', '/v1/generations', {
      model: MODEL,
      input: { prompt: 'x' },
      teamId: other,
    });
    expect(elsewhere.statusCode).toBe(404);
  });

  it('survives its creator leaving the team', async () => {
    const t = await team();
    const { key } = await createKey(t.admin, t.teamId);
    await removeMember(t.teamId, t.admin.userId);
    expect((await call(t.admin, 'GET', `/v1/teams/${t.teamId}`)).statusCode).toBe(404);

    const bot = bearer(key);
    expect((await call(bot, 'GET', `/v1/teams/${t.teamId}`)).statusCode).toBe(200);
    const submitted = await call(bot, 'POST', '/v1/generations', {
      model: MODEL,
      input: { prompt: 'still here' },
    });
    expect(submitted.statusCode, submitted.body).toBe(202);
    // Still the team's key: the owner lists and revokes it.
    const listed = (await call(t.owner, 'GET', `/v1/teams/${t.teamId}/api-keys`)).json().data;
    expect(listed).toHaveLength(1);
  });

  it('is refused from the next request on once revoked, and its user leaves the team', async () => {
    const t = await team();
    const { apiKey, key } = await createKey(t.admin, t.teamId);
    const bot = bearer(key);
    const botId = (await call(bot, 'GET', '/v1/me')).json().id as string;

    const revoked = await call(t.owner, 'DELETE', `/v1/teams/${t.teamId}/api-keys/${apiKey.id}`);
    expect(revoked.statusCode).toBe(204);
    const next = await call(bot, 'GET', '/v1/me');
    expect(next.statusCode).toBe(401);
    expect(next.json().code).toBe('unauthorized');
    expect((await call(bot, 'GET', `/v1/teams/${t.teamId}`)).statusCode).toBe(401);

    const membership = await sys('SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2', [
      t.teamId,
      botId,
    ]);
    expect(membership).toEqual([]);
    expect((await call(t.owner, 'GET', `/v1/teams/${t.teamId}/api-keys`)).json().data).toEqual([]);
    expect((await call(t.owner, 'DELETE', `/v1/teams/${t.teamId}/api-keys/${apiKey.id}`)).statusCode).toBe(
      404,
    );
    // A key of another team, or an unknown one, is not found through this team.
    const other = await createTeam(h.db, t.owner.userId, 'other');
    const foreign = await createKey(t.owner, other);
    expect(
      (await call(t.owner, 'DELETE', `/v1/teams/${t.teamId}/api-keys/${foreign.apiKey.id}`)).statusCode,
    ).toBe(404);
    expect((await call(bearer(foreign.key), 'GET', '/v1/me')).statusCode).toBe(200);

    const audit = await sys<{ action: string; actor_user_id: string }>(
      `SELECT action, actor_user_id FROM team_audit_events
       WHERE team_id = $1 AND target_id = $2 ORDER BY created_at`,
      [t.teamId, apiKey.id],
    );
    expect(audit).toEqual([
      { action: 'api_key.created', actor_user_id: t.admin.userId },
      { action: 'api_key.revoked', actor_user_id: t.owner.userId },
    ]);
  });

  it("closes the key's open event streams when it is revoked", async () => {
    const t = await team();
    const { apiKey, key } = await createKey(t.admin, t.teamId);
    const id = await submitGeneration(h.app, t.member.auth, {
      model: MODEL,
      input: { prompt: 'x' },
      teamId: t.teamId,
    });
    const stream = await fetch(`${base}/v1/generations/${id}/events`, {
      headers: { authorization: `Bearer ${key}` },
      signal: AbortSignal.timeout(20_000),
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: status')) text += decoder.decode((await reader.read()).value);

    expect((await call(t.admin, 'DELETE', `/v1/teams/${t.teamId}/api-keys/${apiKey.id}`)).statusCode).toBe(
      204,
    );
    const revokedAt = Date.now();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(Date.now() - revokedAt).toBeLessThan(5000);
    expect(text).toContain('event: error\ndata: {"code":"not_found"');
    expect(text).not.toContain('event: done');
  });

  it(`holds at most ${MAX_ACTIVE_TEAM_API_KEYS} active keys per team`, async () => {
    const t = await team();
    await withUserTx(h.db, t.admin.userId, async (tx) => {
      for (let i = 0; i < MAX_ACTIVE_TEAM_API_KEYS - 1; i++) {
        const k = generateApiKey();
        await tx.query('SELECT create_team_api_key($1, $2, $3, $4)', [t.teamId, `k${i}`, k.prefix, k.hash]);
      }
    });
    const last = await createKey(t.admin, t.teamId, 'last');
    const refused = await call(t.admin, 'POST', `/v1/teams/${t.teamId}/api-keys`, { name: 'one too many' });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().code).toBe('too_many_api_keys');
    // Another team, and the admin's personal keys, have their own room.
    const other = await createTeam(h.db, t.admin.userId, 'other');
    await createKey(t.admin, other);
    expect((await call(t.admin, 'POST', '/v1/api-keys', { name: 'personal' })).statusCode).toBe(201);
    expect(
      (await call(t.admin, 'DELETE', `/v1/teams/${t.teamId}/api-keys/${last.apiKey.id}`)).statusCode,
    ).toBe(204);
    await createKey(t.admin, t.teamId, 'again');
  });

  it("lets a personal key act in its user's teams with the user's role", async () => {
    const t = await team();
    // A viewer reads the team and its work, but makes nothing in it.
    expect((await call(t.viewer, 'GET', `/v1/teams/${t.teamId}`)).json()).toMatchObject({ role: 'viewer' });
    expect((await call(t.viewer, 'GET', `/v1/projects?teamId=${t.teamId}`)).statusCode).toBe(200);
    for (const [url, payload] of [
      ['/v1/projects', { name: 'mine', teamId: t.teamId }],
      ['/v1/generations', { model: MODEL, input: { prompt: 'x' }, teamId: t.teamId }],
    ] as const) {
      const res = await call(t.viewer, 'POST', url, payload);
      expect(res.statusCode, url).toBe(403);
      expect(res.json()).toMatchObject({ code: 'forbidden', requiredRole: 'member' });
    }
    // A member's personal key makes a team generation, charged to the team, created by the member.
    const made = await call(t.member, 'POST', '/v1/generations', {
      model: MODEL,
      input: { prompt: 'x' },
      teamId: t.teamId,
    });
    expect(made.statusCode, made.body).toBe(202);
    const [row] = await sys<{ user_id: string; team_id: string }>(
      'SELECT user_id, team_id FROM generations WHERE id = $1',
      [made.json().id],
    );
    expect(row).toEqual({ user_id: t.member.userId, team_id: t.teamId });
    // Without teamId, a personal key's generation is personal (and this member has no credit).
    const personal = await call(t.member, 'POST', '/v1/generations', {
      model: MODEL,
      input: { prompt: 'x' },
    });
    expect(personal.statusCode).toBe(402);
  });
});
