import fs from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx, withUserTx } from '../../lib/db/pool';
import { AUDIT_ACTIONS } from '../../lib/teams/audit-store';
import { SCHEMA_FILE } from '../../lib/db/schema-dump';
import { createUser, startApi, systemDb, type ApiHarness } from '../support/context';
import { createTeam } from '../support/teams';

type User = Awaited<ReturnType<typeof createUser>> & { keyId: string };

interface AuditEvent {
  id: string;
  action: string;
  actor: { userId: string | null; apiKeyId: string | null };
  target: { type: string; id: string | null };
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  requestId: string | null;
  createdAt: string;
}

/** GET /v1/teams/:id/audit-log: every change through the API is exactly one event per thing changed. */
describe('team audit log', () => {
  let api: ApiHarness;
  let owner: User;
  let admin: User;
  let member: User;
  let viewer: User;
  let outsider: User;
  beforeAll(async () => {
    api = await startApi({ RATE_LIMIT_MAX: '1000000' });
    const user = async (): Promise<User> => {
      const u = await createUser(api.db);
      const key = await systemDb().query<{ id: string }>('SELECT id FROM api_keys WHERE user_id = $1', [
        u.userId,
      ]);
      return { ...u, keyId: key.rows[0]!.id };
    };
    [owner, admin, member, viewer, outsider] = (await Promise.all(Array.from({ length: 5 }, user))) as [
      User,
      User,
      User,
      User,
      User,
    ];
  });
  afterAll(() => api?.stop());

  const call = (
    headers: Record<string, string>,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    payload?: object,
  ) => api.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  const join = (teamId: string, user: User, role: string) =>
    withSystemTx(systemDb(), (tx) =>
      tx.query('INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)', [
        teamId,
        user.userId,
        role,
      ]),
    );

  /** Every event of the team, newest first, read page by page through the API as `reader`. */
  async function auditLog(teamId: string, reader: User = owner, query = ''): Promise<AuditEvent[]> {
    const all: AuditEvent[] = [];
    let cursor: string | null = null;
    do {
      const res = await call(
        reader.auth,
        'GET',
        `/v1/teams/${teamId}/audit-log?limit=100${query}${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json() as { data: AuditEvent[]; nextCursor: string | null };
      all.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor);
    return all;
  }

  type Comparable = Pick<AuditEvent, 'action' | 'target' | 'requestId' | 'before'>;
  const sortKey = (e: Comparable) => `${e.action} ${e.target.id} ${e.requestId} ${JSON.stringify(e.before)}`;
  const byTarget = (a: Comparable, b: Comparable) =>
    sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0;

  it('records each change with its actor, target, before/after and the request id the response carried', async () => {
    const expected: Omit<AuditEvent, 'id' | 'createdAt'>[] = [];
    /** Sends the request; the events carrying its request id must be exactly `events`. */
    async function change(
      who: User,
      method: 'POST' | 'PATCH' | 'DELETE',
      url: string,
      payload: object | undefined,
      status: number,
      events: Omit<AuditEvent, 'id' | 'createdAt' | 'actor' | 'requestId'>[],
      headers: Record<string, string> = who.auth,
      apiKeyId: string | null = who.keyId,
    ) {
      const res = await call(headers, method, url, payload);
      expect(res.statusCode, res.body).toBe(status);
      const requestId = res.headers['x-request-id'] as string;
      expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
      const want = events.map((e) => ({ ...e, actor: { userId: who.userId, apiKeyId }, requestId }));
      expected.push(...want);
      return { res, requestId, want };
    }
    const check = async (teamId: string, requestId: string, want: unknown[]) => {
      const got = (await auditLog(teamId)).filter((e) => e.requestId === requestId);
      expect(got.map(({ id: _i, createdAt: _c, ...rest }) => rest).sort(byTarget)).toEqual(
        [...(want as AuditEvent[])].sort(byTarget),
      );
    };

    const created = await change(owner, 'POST', '/v1/teams', { name: 'Audited' }, 201, []);
    const teamId = created.res.json().id as string;
    const createdEvents = [
      {
        action: 'team.created',
        target: { type: 'team', id: teamId },
        before: null,
        after: { name: 'Audited' },
      },
      {
        action: 'member.added',
        target: { type: 'user', id: owner.userId },
        before: null,
        after: { role: 'owner', monthlySpendLimit: null },
      },
    ].map((e) => ({
      ...e,
      actor: { userId: owner.userId, apiKeyId: owner.keyId },
      requestId: created.requestId,
    }));
    expected.push(...createdEvents);
    await check(teamId, created.requestId, createdEvents);

    // Members added behind the API (an operator): no actor, no request.
    for (const [u, role] of [
      [admin, 'admin'],
      [member, 'member'],
      [viewer, 'viewer'],
    ] as const) {
      await join(teamId, u, role);
      expected.push({
        action: 'member.added',
        target: { type: 'user', id: u.userId },
        before: null,
        after: { role, monthlySpendLimit: null },
        actor: { userId: null, apiKeyId: null },
        requestId: null,
      });
    }

    // With a login token: no key.
    const { token } = api.app.issueToken({ id: owner.userId, role: 'user' });
    const renamed = await change(
      owner,
      'PATCH',
      `/v1/teams/${teamId}`,
      { name: 'Audited 2' },
      200,
      [
        {
          action: 'team.renamed',
          target: { type: 'team', id: teamId },
          before: { name: 'Audited' },
          after: { name: 'Audited 2' },
        },
      ],
      { authorization: `Bearer ${token}` },
      null,
    );
    await check(teamId, renamed.requestId, renamed.want);

    const memberUrl = (u: User) => `/v1/teams/${teamId}/members/${u.userId}`;
    const role = await change(admin, 'PATCH', memberUrl(member), { role: 'viewer' }, 200, [
      {
        action: 'member.role_changed',
        target: { type: 'user', id: member.userId },
        before: { role: 'member' },
        after: { role: 'viewer' },
      },
    ]);
    await check(teamId, role.requestId, role.want);

    const limit = await change(admin, 'PATCH', memberUrl(member), { monthlySpendLimit: 500 }, 200, [
      {
        action: 'member.spend_limit_changed',
        target: { type: 'user', id: member.userId },
        before: { monthlySpendLimit: null },
        after: { monthlySpendLimit: 500 },
      },
    ]);
    await check(teamId, limit.requestId, limit.want);

    const both = await change(
      owner,
      'PATCH',
      memberUrl(member),
      { role: 'member', monthlySpendLimit: null },
      200,
      [
        {
          action: 'member.role_changed',
          target: { type: 'user', id: member.userId },
          before: { role: 'viewer' },
          after: { role: 'member' },
        },
        {
          action: 'member.spend_limit_changed',
          target: { type: 'user', id: member.userId },
          before: { monthlySpendLimit: 500 },
          after: { monthlySpendLimit: null },
        },
      ],
    );
    await check(teamId, both.requestId, both.want);

    // No change, or a refused one: no event.
    const same = await change(owner, 'PATCH', memberUrl(member), { role: 'member' }, 200, []);
    await check(teamId, same.requestId, []);
    const refused = await change(admin, 'PATCH', memberUrl(owner), { monthlySpendLimit: 1 }, 403, []);
    await check(teamId, refused.requestId, []);
    const ownerLeaves = await change(owner, 'DELETE', memberUrl(owner), undefined, 409, []);
    await check(teamId, ownerLeaves.requestId, []);

    const leave = await change(viewer, 'DELETE', memberUrl(viewer), undefined, 204, [
      {
        action: 'member.removed',
        target: { type: 'user', id: viewer.userId },
        before: { role: 'viewer', monthlySpendLimit: null },
        after: null,
      },
    ]);
    // The viewer left: it reads the log no more; the owner sees its event.
    await check(teamId, leave.requestId, leave.want);

    const transfer = await change(
      owner,
      'POST',
      `/v1/teams/${teamId}/transfer-ownership`,
      { userId: admin.userId },
      200,
      [
        {
          action: 'ownership.transferred',
          target: { type: 'user', id: admin.userId },
          before: { owner: owner.userId },
          after: { owner: admin.userId },
        },
        {
          action: 'member.role_changed',
          target: { type: 'user', id: owner.userId },
          before: { role: 'owner' },
          after: { role: 'admin' },
        },
        {
          action: 'member.role_changed',
          target: { type: 'user', id: admin.userId },
          before: { role: 'admin' },
          after: { role: 'owner' },
        },
      ],
    );
    await check(teamId, transfer.requestId, transfer.want);

    const removed = await change(admin, 'DELETE', memberUrl(member), undefined, 204, [
      {
        action: 'member.removed',
        target: { type: 'user', id: member.userId },
        before: { role: 'member', monthlySpendLimit: null },
        after: null,
      },
    ]);
    await check(teamId, removed.requestId, removed.want);

    // Exactly these events, nothing more, newest first.
    const log = await auditLog(teamId);
    expect(log.map(({ id: _i, createdAt: _c, ...rest }) => rest).sort(byTarget)).toEqual(
      [...expected].sort(byTarget),
    );
    const times = log.map((e) => e.createdAt);
    expect([...times].sort().reverse()).toEqual(times);

    // Deleting the team is recorded too (read at system level: the team is gone for everyone).
    const deleted = await call(admin.auth, 'DELETE', `/v1/teams/${teamId}`);
    expect(deleted.statusCode).toBe(204);
    const rows = await systemDb().query(
      `SELECT action, target_id, actor_user_id, actor_api_key_id, before, after FROM team_audit_events
       WHERE team_id = $1 AND request_id = $2 ORDER BY action || ' ' || target_id COLLATE "C"`,
      [teamId, deleted.headers['x-request-id']],
    );
    const actor = { actor_user_id: admin.userId, actor_api_key_id: admin.keyId, after: null };
    const key = (r: { action: string; target_id: string }) => `${r.action} ${r.target_id}`;
    expect(rows.rows).toEqual(
      [
        {
          action: 'member.removed',
          target_id: admin.userId,
          before: { role: 'owner', monthlySpendLimit: null },
          ...actor,
        },
        {
          action: 'member.removed',
          target_id: owner.userId,
          before: { role: 'admin', monthlySpendLimit: null },
          ...actor,
        },
        { action: 'team.deleted', target_id: teamId, before: { name: 'Audited 2' }, ...actor },
      ].sort((a, b) => (key(a) < key(b) ? -1 : 1)),
    );
    expect((await call(admin.auth, 'GET', `/v1/teams/${teamId}/audit-log`)).statusCode).toBe(404);
  });

  it('filters by action and actor, and pages through every event once', async () => {
    const teamId = await createTeam(api.db, owner.userId, 'filters');
    await join(teamId, admin, 'admin');
    await join(teamId, member, 'member');
    const patch = (who: User, body: object) =>
      call(who.auth, 'PATCH', `/v1/teams/${teamId}/members/${member.userId}`, body);
    for (const r of ['viewer', 'member', 'viewer'])
      expect((await patch(admin, { role: r })).statusCode).toBe(200);
    for (const l of [10, 20]) expect((await patch(owner, { monthlySpendLimit: l })).statusCode).toBe(200);
    expect((await call(owner.auth, 'PATCH', `/v1/teams/${teamId}`, { name: 'f2' })).statusCode).toBe(200);

    const all = await auditLog(teamId);
    // team.created, 3 × member.added, 3 role changes, 2 limit changes, 1 rename.
    expect(all).toHaveLength(10);

    const roleChanges = await auditLog(teamId, owner, '&action=member.role_changed');
    expect(roleChanges.map((e) => e.after)).toEqual([
      { role: 'viewer' },
      { role: 'member' },
      { role: 'viewer' },
    ]);
    const byAdmin = await auditLog(teamId, owner, `&actor=${admin.userId}`);
    expect(byAdmin.map((e) => e.action)).toEqual([
      'member.role_changed',
      'member.role_changed',
      'member.role_changed',
    ]);
    const byOwner = await auditLog(teamId, admin, `&actor=${owner.userId}&action=member.spend_limit_changed`);
    expect(byOwner.map((e) => e.after)).toEqual([{ monthlySpendLimit: 20 }, { monthlySpendLimit: 10 }]);
    expect(await auditLog(teamId, owner, `&actor=${outsider.userId}`)).toEqual([]);

    // Page by page, one at a time: the same events in the same order, each once.
    const walked: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await call(
        owner.auth,
        'GET',
        `/v1/teams/${teamId}/audit-log?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      const page = res.json() as { data: AuditEvent[]; nextCursor: string | null };
      walked.push(...page.data.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(walked).toEqual(all.map((e) => e.id));

    for (const [query, field] of [
      ['action=member.promoted', 'querystring.action'],
      ['actor=someone', 'querystring.actor'],
      ['limit=0', 'querystring.limit'],
      ['cursor=garbage', 'querystring.cursor'],
    ]) {
      const res = await call(owner.auth, 'GET', `/v1/teams/${teamId}/audit-log?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().errors[0].path, query).toBe(field);
    }
  });

  it('is for admins and the owner: members and viewers get 403, outsiders 404', async () => {
    const teamId = await createTeam(api.db, owner.userId, 'private');
    await join(teamId, admin, 'admin');
    await join(teamId, member, 'member');
    await join(teamId, viewer, 'viewer');
    expect((await auditLog(teamId, admin)).length).toBe(5);
    for (const who of [member, viewer]) {
      const res = await call(who.auth, 'GET', `/v1/teams/${teamId}/audit-log`);
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
    }
    const hidden = await call(outsider.auth, 'GET', `/v1/teams/${teamId}/audit-log`);
    expect(hidden.statusCode).toBe(404);
    expect(hidden.json().detail).toBe('Team not found.');
    // The database agrees: a member's own query of the table sees nothing.
    const seen = await withUserTx(api.db, member.userId, (tx) =>
      tx.query('SELECT count(*)::int AS n FROM team_audit_events WHERE team_id = $1', [teamId]),
    );
    expect(seen.rows[0].n).toBe(0);
  });

  it('is append-only, even for velro_system, and velro_app cannot write it at all', async () => {
    const teamId = await createTeam(api.db, owner.userId, 'append-only');
    const system = (sql: string) => withSystemTx(systemDb(), (tx) => tx.query(sql, [teamId]));
    await expect(
      system("UPDATE team_audit_events SET action = 'team.renamed' WHERE team_id = $1"),
    ).rejects.toThrow();
    await expect(system('DELETE FROM team_audit_events WHERE team_id = $1')).rejects.toThrow();
    const asOwner = (sql: string, params: unknown[]) =>
      withUserTx(api.db, owner.userId, (tx) => tx.query(sql, params));
    await expect(
      asOwner("UPDATE team_audit_events SET action = 'x' WHERE team_id = $1", [teamId]),
    ).rejects.toMatchObject({
      code: '42501',
    });
    await expect(asOwner('DELETE FROM team_audit_events WHERE team_id = $1', [teamId])).rejects.toMatchObject(
      { code: '42501' },
    );
    await expect(
      asOwner(
        `INSERT INTO team_audit_events (id, team_id, action, target_type) VALUES ($1, $2, 'team.renamed', 'team')`,
        [randomUUID(), teamId],
      ),
    ).rejects.toMatchObject({ code: '42501' });
    expect((await auditLog(teamId)).map((e) => e.action).sort()).toEqual(['member.added', 'team.created']);
  });

  it('knows every action the database records', async () => {
    const schema = await fs.readFile(SCHEMA_FILE, 'utf8');
    const recorded = new Set(
      [...schema.matchAll(/team_audit\([^,]+,\s*'([a-z_]+\.[a-z_]+)'/g)].map((m) => m[1]),
    );
    expect([...recorded].sort()).toEqual([...AUDIT_ACTIONS].sort());
  });
});
