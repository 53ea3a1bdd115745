import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx } from '../../lib/db/pool';
import { createUser, startApi, systemDb, type ApiHarness } from '../support/context';
import { createTeam } from '../support/teams';

type User = Awaited<ReturnType<typeof createUser>>;
type Column = 'owner' | 'admin' | 'member' | 'viewer' | 'outsider';

/** What a row's builders get: a fresh team (one per cell), its people, and who acts. */
interface Cell {
  teamId: string;
  /** The caller of this cell. */
  actor: User;
  /** One user per column (the outsider is in no team), plus `target`, a plain member acted upon. */
  users: Record<Column | 'target', User>;
  api: ApiHarness;
  /** Set by a row's setup when its path needs a project. */
  projectId?: string;
}

interface Action {
  name: string;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: (c: Cell) => string;
  body?: (c: Cell) => object;
  /** Anything the action needs in the fresh team before it runs (credits, a project…). */
  setup?: (c: Cell) => Promise<void>;
  expect: Record<Column, number>;
}

// Every team action × every role. Each cell runs against a fresh team, so no row depends on another.
// To add an action, add a row.
const ACTIONS: Action[] = [
  {
    name: 'get team',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}`,
    expect: { owner: 200, admin: 200, member: 200, viewer: 200, outsider: 404 },
  },
  {
    name: 'rename team',
    method: 'PATCH',
    path: (c) => `/v1/teams/${c.teamId}`,
    body: () => ({ name: 'renamed' }),
    expect: { owner: 200, admin: 200, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'delete team',
    method: 'DELETE',
    path: (c) => `/v1/teams/${c.teamId}`,
    expect: { owner: 204, admin: 403, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'list members',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}/members`,
    expect: { owner: 200, admin: 200, member: 200, viewer: 200, outsider: 404 },
  },
  {
    name: 'change role',
    method: 'PATCH',
    path: (c) => `/v1/teams/${c.teamId}/members/${c.users.target.userId}`,
    body: () => ({ role: 'viewer' }),
    expect: { owner: 200, admin: 200, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'set spend limit',
    method: 'PATCH',
    path: (c) => `/v1/teams/${c.teamId}/members/${c.users.target.userId}`,
    body: () => ({ monthlySpendLimit: 1000 }),
    expect: { owner: 200, admin: 200, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'remove another member',
    method: 'DELETE',
    path: (c) => `/v1/teams/${c.teamId}/members/${c.users.target.userId}`,
    expect: { owner: 204, admin: 204, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'leave team',
    method: 'DELETE',
    path: (c) => `/v1/teams/${c.teamId}/members/${c.actor.userId}`,
    expect: { owner: 409, admin: 204, member: 204, viewer: 204, outsider: 404 },
  },
  {
    name: 'transfer ownership',
    method: 'POST',
    path: (c) => `/v1/teams/${c.teamId}/transfer-ownership`,
    body: (c) => ({ userId: c.users.target.userId }),
    expect: { owner: 200, admin: 403, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'read audit log',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}/audit-log`,
    expect: { owner: 200, admin: 200, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'invite',
    method: 'POST',
    path: (c) => `/v1/teams/${c.teamId}/invitations`,
    body: (c) => ({ email: `new-${c.actor.userId}@example.com`, role: 'member' }),
    expect: { owner: 201, admin: 201, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'list invitations',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}/invitations`,
    expect: { owner: 200, admin: 200, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'create a team key',
    method: 'POST',
    path: (c) => `/v1/teams/${c.teamId}/api-keys`,
    body: () => ({ name: 'ci' }),
    expect: { owner: 201, admin: 201, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'list team keys',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}/api-keys`,
    expect: { owner: 200, admin: 200, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'register a team webhook endpoint',
    method: 'POST',
    path: (c) => `/v1/teams/${c.teamId}/webhook-endpoints`,
    body: () => ({ url: 'http://127.0.0.1:9/velro' }),
    expect: { owner: 201, admin: 201, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'read team balance',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}/credits`,
    expect: { owner: 200, admin: 200, member: 200, viewer: 200, outsider: 404 },
  },
  {
    name: 'read team ledger lines',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}/credits/transactions`,
    expect: { owner: 200, admin: 200, member: 200, viewer: 200, outsider: 404 },
  },
  {
    name: 'read team usage',
    method: 'GET',
    path: (c) => `/v1/teams/${c.teamId}/usage`,
    expect: { owner: 200, admin: 200, member: 200, viewer: 200, outsider: 404 },
  },
  {
    name: 'create a team project',
    method: 'POST',
    path: () => '/v1/projects',
    body: (c) => ({ name: 'shared', teamId: c.teamId }),
    expect: { owner: 201, admin: 201, member: 201, viewer: 403, outsider: 404 },
  },
  {
    name: "rename another's team project",
    method: 'PATCH',
    path: (c) => `/v1/projects/${c.projectId}`,
    body: () => ({ name: 'renamed' }),
    setup: async (c) => {
      c.projectId = await teamProjectOf(c, c.users.target);
    },
    expect: { owner: 200, admin: 200, member: 403, viewer: 403, outsider: 404 },
  },
  {
    name: 'delete own team project',
    method: 'DELETE',
    path: (c) => `/v1/projects/${c.projectId}`,
    setup: async (c) => {
      if (c.actor !== c.users.outsider) c.projectId = await teamProjectOf(c, c.actor);
      else c.projectId = await teamProjectOf(c, c.users.target);
    },
    expect: { owner: 204, admin: 204, member: 204, viewer: 403, outsider: 404 },
  },
  {
    name: 'list team projects',
    method: 'GET',
    path: (c) => `/v1/projects?teamId=${c.teamId}`,
    expect: { owner: 200, admin: 200, member: 200, viewer: 200, outsider: 404 },
  },
  {
    name: 'list team generations',
    method: 'GET',
    path: (c) => `/v1/generations?teamId=${c.teamId}`,
    expect: { owner: 200, admin: 200, member: 200, viewer: 200, outsider: 404 },
  },
];

/** A project of the cell's team made by `maker` (inserted at system level: the viewer's too, as if made before a demotion). */
async function teamProjectOf(c: Cell, maker: User): Promise<string> {
  const { rows } = await withSystemTx(systemDb(), (tx) =>
    tx.query<{ id: string }>(
      `INSERT INTO projects (user_id, team_id, name) VALUES ($1, $2, 'p') RETURNING id`,
      [maker.userId, c.teamId],
    ),
  );
  return rows[0]!.id;
}

const COLUMNS: Column[] = ['owner', 'admin', 'member', 'viewer', 'outsider'];

describe('team roles × actions', () => {
  let api: ApiHarness;
  let users: Cell['users'];
  beforeAll(async () => {
    api = await startApi({ RATE_LIMIT_MAX: '1000000' });
    const made = await Promise.all(
      [...COLUMNS, 'target'].map(async (k) => [k, await createUser(api.db)] as const),
    );
    users = Object.fromEntries(made) as Cell['users'];
  });
  afterAll(() => api?.stop());

  /** A fresh team: owner by create_team, the others added at system level (as an accepted invitation does). */
  async function freshTeam(): Promise<string> {
    const teamId = await createTeam(api.db, users.owner.userId, 'roles');
    await withSystemTx(systemDb(), async (tx) => {
      for (const [key, role] of [
        ['admin', 'admin'],
        ['member', 'member'],
        ['viewer', 'viewer'],
        ['target', 'member'],
      ] as const)
        await tx.query('INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3)', [
          teamId,
          users[key].userId,
          role,
        ]);
    });
    return teamId;
  }

  it('answers every role as the table says', async () => {
    const cells = ACTIONS.flatMap((action) => COLUMNS.map((column) => ({ action, column })));
    const results = await Promise.all(
      cells.map(async ({ action, column }) => {
        const cell: Cell = { teamId: await freshTeam(), actor: users[column], users, api };
        await action.setup?.(cell);
        const res = await api.app.inject({
          method: action.method,
          url: action.path(cell),
          headers: cell.actor.auth,
          ...(action.body ? { payload: action.body(cell) } : {}),
        });
        const body = res.statusCode === 204 ? null : res.json();
        // Refusals say why: the role needed, or the team hidden as if it did not exist.
        const shape =
          res.statusCode === 403
            ? body.code === 'forbidden' && typeof body.requiredRole === 'string'
            : res.statusCode === 404
              ? body.code === 'not_found' && /^(Team not found\.|Project not found)$/.test(body.detail)
              : true;
        return {
          name: `${action.name} as ${column}`,
          status: res.statusCode,
          shape,
          expected: action.expect[column],
        };
      }),
    );
    expect(results).toHaveLength(ACTIONS.length * COLUMNS.length);
    const wrong = results.filter((r) => r.status !== r.expected || !r.shape);
    expect(wrong).toEqual([]);
  });
});
