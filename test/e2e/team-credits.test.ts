import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../lib/auth/api-keys';
import { withSystemTx, withUserTx } from '../../lib/db/pool';
import { transferId } from '../../lib/ledger/ids';
import * as ledger from '../../lib/ledger/ledger';
import { createUser, startApi, systemDb, type ApiHarness } from '../support/context';
import { runAdmin } from '../support/scripts';
import { addMember, createTeam } from '../support/teams';

/**
 * A team's credit account over HTTP: its balance, its lines (admins all, members their own), the
 * usage per member and model, and grants into it by an admin (API and `npm run admin`).
 */

type User = Awaited<ReturnType<typeof createUser>>;
const hour = () => new Date(Date.now() + 3600_000);
const thisMonth = () => new Date().toISOString().slice(0, 7);

describe('team credits', () => {
  let h: ApiHarness;
  let siteAdmin: User;
  beforeAll(async () => {
    h = await startApi();
    siteAdmin = await createUser(h.db, 0, 'admin');
  });
  afterAll(() => h?.stop());

  const get = (auth: Record<string, string>, url: string) => h.app.inject({ url, headers: auth });
  const grantTo = (payload: Record<string, unknown>) =>
    h.app.inject({ method: 'POST', url: '/v1/admin/credit-grants', headers: siteAdmin.auth, payload });

  /** A team: owner, admin, two members, a viewer; 1000 credits granted by the site admin (API). */
  async function team() {
    const [owner, admin, alice, bob, viewer, outsider] = await Promise.all(
      Array.from({ length: 6 }, () => createUser(h.db, 100)),
    );
    const teamId = await createTeam(h.db, owner!.userId);
    await addMember(h.db, teamId, owner!.userId, admin!, 'admin');
    await addMember(h.db, teamId, owner!.userId, alice!, 'member');
    await addMember(h.db, teamId, owner!.userId, bob!, 'member');
    await addMember(h.db, teamId, owner!.userId, viewer!, 'viewer');
    const grant = await grantTo({ teamId, credits: 1000, reason: 'team plan' });
    expect(grant.statusCode).toBe(201);
    return {
      teamId,
      owner: owner!,
      admin: admin!,
      alice: alice!,
      bob: bob!,
      viewer: viewer!,
      outsider: outsider!,
      grant: grant.json(),
    };
  }

  /** A team generation by `user` with its reservation (as admission leaves them); returns its reserve. */
  async function generate(user: User, teamId: string, model: string, credits: number) {
    const generationId = randomUUID();
    return withUserTx(h.db, user.userId, async (tx) => {
      await tx.query(
        `INSERT INTO generations (id, user_id, team_id, model, input, credits, provider, status, stage)
         VALUES ($1, $2, $3, $4, '{"prompt":"x"}', $5, 'local', 'running', 'waiting for provider')`,
        [generationId, user.userId, teamId, model, credits],
      );
      return ledger.reserve(tx, {
        id: transferId(generationId, 'reserve'),
        amount: credits,
        generationId,
        deadline: hour(),
        teamId,
      });
    });
  }
  const settle = (user: User, reserve: ledger.Transfer, how: 'commit' | 'release') =>
    withUserTx(h.db, user.userId, (tx) =>
      how === 'commit'
        ? ledger.commit(tx, { id: transferId(reserve.generationId!, 'commit'), pendingId: reserve.id })
        : ledger.release(tx, {
            id: transferId(reserve.generationId!, 'release'),
            pendingId: reserve.id,
            reason: 'failed',
          }),
    );

  /** Alice: one imagen committed, one flux released; Bob: one imagen still reserved. */
  async function busyTeam() {
    const t = await team();
    const a1 = await generate(t.alice, t.teamId, 'imagen4-ultra', 45);
    await settle(t.alice, a1, 'commit');
    const a2 = await generate(t.alice, t.teamId, 'flux-pro-v1.1-ultra', 50);
    await settle(t.alice, a2, 'release');
    const b1 = await generate(t.bob, t.teamId, 'imagen4-ultra', 45);
    return { ...t, a1, a2, b1 };
  }

  describe('GET /v1/teams/:id/credits', () => {
    it("shows every member, whatever its role, the team account's balance, and nobody else", async () => {
      const t = await busyTeam();
      const expected = { available: 910, reserved: 45, spent: 45, granted: 1000, expired: 0 };
      for (const who of [t.owner, t.admin, t.alice, t.bob, t.viewer]) {
        const res = await get(who.auth, `/v1/teams/${t.teamId}/credits`);
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual(expected);
      }
      // The members' own accounts are untouched.
      expect((await get(t.alice.auth, '/v1/credits')).json()).toEqual({
        available: 100,
        reserved: 0,
        spent: 0,
      });

      // A team key of the team reads it too.
      const key = generateApiKey();
      await withUserTx(h.db, t.admin.userId, (tx) =>
        tx.query('SELECT create_team_api_key($1, $2, $3, $4)', [t.teamId, 'ci', key.prefix, key.hash]),
      );
      const byKey = await get({ authorization: `Bearer ${key.key}` }, `/v1/teams/${t.teamId}/credits`);
      expect(byKey.json()).toEqual(expected);

      for (const url of [`/v1/teams/${t.teamId}/credits`, `/v1/teams/${randomUUID()}/credits`]) {
        const res = await get(t.outsider.auth, url);
        expect(res.statusCode).toBe(404);
        expect(res.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });
      }
      const bad = await get(t.alice.auth, '/v1/teams/nope/credits');
      expect(bad.statusCode).toBe(400);
      expect(bad.json().detail).toContain('params.id:');
    });
  });

  describe('GET /v1/teams/:id/credits/transactions', () => {
    const lines = async (who: User, teamId: string, limit = 100) => {
      const res = await get(who.auth, `/v1/teams/${teamId}/credits/transactions?limit=${limit}`);
      expect(res.statusCode).toBe(200);
      return res.json().data as { id: string; kind: string; amount: number; userId: string | null }[];
    };

    it('shows admins and the owner every line, members their own, viewers none', async () => {
      const t = await busyTeam();
      const alices = [
        {
          kind: 'release',
          amount: 50,
          userId: t.alice.userId,
          generationId: t.a2.generationId,
          reason: 'failed',
        },
        { kind: 'reserve', amount: 50, userId: t.alice.userId, generationId: t.a2.generationId },
        {
          kind: 'commit',
          amount: 45,
          userId: t.alice.userId,
          generationId: t.a1.generationId,
          pendingId: t.a1.id,
        },
        { kind: 'reserve', amount: 45, userId: t.alice.userId, generationId: t.a1.generationId },
      ];
      const bobs = [{ kind: 'reserve', amount: 45, userId: t.bob.userId, generationId: t.b1.generationId }];
      const grant = {
        id: t.grant.id,
        kind: 'grant',
        amount: 1000,
        userId: null,
        reason: 'team plan',
        generationId: null,
      };
      for (const who of [t.owner, t.admin]) {
        expect(await lines(who, t.teamId)).toMatchObject([...bobs, ...alices, grant]);
      }
      expect(await lines(t.alice, t.teamId)).toMatchObject(alices);
      expect(await lines(t.bob, t.teamId)).toMatchObject(bobs);
      expect(await lines(t.viewer, t.teamId)).toEqual([]);
      // Team lines are not the member's personal ones.
      const personal = (await get(t.alice.auth, '/v1/credits/transactions')).json().data;
      expect(personal.map((l: { kind: string }) => l.kind)).toEqual(['grant']);

      const outsider = await get(t.outsider.auth, `/v1/teams/${t.teamId}/credits/transactions`);
      expect(outsider.statusCode).toBe(404);
      const badCursor = await get(t.admin.auth, `/v1/teams/${t.teamId}/credits/transactions?cursor=abc`);
      expect(badCursor.statusCode).toBe(400);
      expect(badCursor.json().detail).toContain('querystring.cursor');
    });

    it('pages through every line exactly once, lines of one transaction (one instant) included', async () => {
      const t = await team();
      // Five reservations in one transaction: one created_at, finer than the cursor's milliseconds.
      await withUserTx(h.db, t.bob.userId, async (tx) => {
        for (let i = 0; i < 5; i++)
          await ledger.reserve(tx, {
            id: randomUUID(),
            amount: 10,
            generationId: null,
            deadline: hour(),
            teamId: t.teamId,
          });
      });
      const all = (await lines(t.admin, t.teamId)).map((l) => l.id);
      expect(all).toHaveLength(6);
      const paged: string[] = [];
      let cursor: string | null = null;
      do {
        const res = await get(
          t.admin.auth,
          `/v1/teams/${t.teamId}/credits/transactions?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        const body = res.json() as { data: { id: string }[]; nextCursor: string | null };
        paged.push(...body.data.map((l) => l.id));
        cursor = body.nextCursor;
      } while (cursor);
      expect(paged).toEqual(all);
    });
  });

  describe('GET /v1/teams/:id/usage', () => {
    it('counts reservations of the month per member and model: reserved, spent, refunded', async () => {
      const t = await busyTeam();
      const alices = [
        {
          userId: t.alice.userId,
          model: 'flux-pro-v1.1-ultra',
          count: 1,
          reserved: 0,
          spent: 0,
          refunded: 50,
        },
        { userId: t.alice.userId, model: 'imagen4-ultra', count: 1, reserved: 0, spent: 45, refunded: 0 },
      ];
      const bobs = [
        { userId: t.bob.userId, model: 'imagen4-ultra', count: 1, reserved: 45, spent: 0, refunded: 0 },
      ];
      const usage = async (who: User, query = '') => {
        const res = await get(who.auth, `/v1/teams/${t.teamId}/usage${query}`);
        expect(res.statusCode).toBe(200);
        const body = res.json() as { month: string; data: { userId: string }[] };
        // Members in any order; within one, by model.
        return {
          ...body,
          data: [...body.data].sort((a, b) =>
            a.userId === b.userId ? 0 : a.userId === t.alice.userId ? -1 : 1,
          ),
        };
      };
      // A second reservation for the same member and model adds up.
      const a3 = await generate(t.alice, t.teamId, 'imagen4-ultra', 45);
      await settle(t.alice, a3, 'commit');
      alices[1] = { ...alices[1]!, count: 2, spent: 90 };

      for (const who of [t.owner, t.admin]) {
        expect(await usage(who)).toEqual({ month: thisMonth(), data: [...alices, ...bobs] });
      }
      expect(await usage(t.alice, `?month=${thisMonth()}`)).toEqual({ month: thisMonth(), data: alices });
      expect(await usage(t.bob)).toEqual({ month: thisMonth(), data: bobs });
      expect(await usage(t.viewer)).toEqual({ month: thisMonth(), data: [] });
      expect(await usage(t.admin, '?month=2001-01')).toEqual({ month: '2001-01', data: [] });

      for (const month of ['2026-13', '2026-1', 'last', '0000-01', '2026-01-01']) {
        const res = await get(t.admin.auth, `/v1/teams/${t.teamId}/usage?month=${month}`);
        expect(res.statusCode, month).toBe(400);
        expect(res.json().detail, month).toContain('querystring.month: must be a month as YYYY-MM');
      }
      const outsider = await get(t.outsider.auth, `/v1/teams/${t.teamId}/usage`);
      expect(outsider.statusCode).toBe(404);
      expect(outsider.json().detail).toBe('Team not found.');
    });
  });

  describe('grants into a team account', () => {
    const auditOf = async (teamId: string) =>
      (
        await withSystemTx(systemDb(), (tx) =>
          tx.query(
            `SELECT action, actor_user_id, actor_api_key_id, target_id, after, request_id
             FROM team_audit_events WHERE team_id = $1 AND action = 'credits.granted' ORDER BY created_at`,
            [teamId],
          ),
        )
      ).rows;
    const balanceOf = async (member: User, teamId: string) =>
      (await get(member.auth, `/v1/teams/${teamId}/credits`)).json();

    it('POST /v1/admin/credit-grants with teamId: 201 naming the team, the balance moves, and the audit log says who and which request', async () => {
      const owner = await createUser(h.db);
      const teamId = await createTeam(h.db, owner.userId);
      const expiresAt = new Date(Date.now() + 7 * 24 * 3600_000).toISOString();
      const id = randomUUID();
      const res = await grantTo({ id, teamId, credits: 250, reason: 'launch promo', expiresAt });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({
        id,
        kind: 'grant',
        teamId,
        userId: null,
        amount: 250,
        reason: 'launch promo',
        expiresAt,
      });
      expect(await balanceOf(owner, teamId)).toEqual({
        available: 250,
        reserved: 0,
        spent: 0,
        granted: 250,
        expired: 0,
      });
      expect(await auditOf(teamId)).toEqual([
        {
          action: 'credits.granted',
          actor_user_id: siteAdmin.userId,
          actor_api_key_id: expect.any(String),
          target_id: id,
          after: { credits: 250, reason: 'launch promo', expiresAt: expect.any(String) },
          request_id: res.headers['x-request-id'],
        },
      ]);
      // A retry is the first grant again; the same id with other fields conflicts.
      const again = await grantTo({ id, teamId, credits: 250, reason: 'launch promo', expiresAt });
      expect(again.statusCode).toBe(201);
      expect(again.json()).toEqual(res.json());
      expect(
        (await grantTo({ id, teamId, credits: 251, reason: 'launch promo', expiresAt })).statusCode,
      ).toBe(409);
      expect(await balanceOf(owner, teamId)).toMatchObject({ granted: 250 });
      expect(await auditOf(teamId)).toHaveLength(1);
    });

    it('answers 400 naming the fields unless exactly one of userId and teamId, 404 for an unknown or deleted team; moves nothing', async () => {
      const owner = await createUser(h.db, 0);
      const teamId = await createTeam(h.db, owner.userId);
      const cases: [Record<string, unknown>, string][] = [
        [
          { userId: owner.userId, teamId, credits: 10, reason: 'r' },
          'body.teamId: give exactly one of userId and teamId',
        ],
        [{ credits: 10, reason: 'r' }, 'body.userId: give exactly one of userId and teamId'],
        [{ teamId: 'team-1', credits: 10, reason: 'r' }, 'body.teamId: must be a UUID'],
        [{ teamId, credits: 0, reason: 'r' }, 'body.credits'],
      ];
      for (const [body, detail] of cases) {
        const res = await grantTo(body);
        expect(res.statusCode, JSON.stringify(body)).toBe(400);
        expect(res.json().detail, JSON.stringify(body)).toContain(detail);
      }
      const unknown = await grantTo({ teamId: randomUUID(), credits: 10, reason: 'r' });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });

      const gone = await createTeam(h.db, owner.userId, 'gone');
      await withUserTx(h.db, owner.userId, (tx) => tx.query('SELECT delete_team($1)', [gone]));
      const deleted = await grantTo({ teamId: gone, credits: 10, reason: 'r' });
      expect(deleted.statusCode).toBe(404);

      expect(await balanceOf(owner, teamId)).toEqual({
        available: 0,
        reserved: 0,
        spent: 0,
        granted: 0,
        expired: 0,
      });
      expect((await get(owner.auth, '/v1/credits')).json()).toEqual({ available: 0, reserved: 0, spent: 0 });
      expect(await auditOf(teamId)).toEqual([]);
      expect(await auditOf(gone)).toEqual([]);
    });

    it('npm run admin -- grant --team: grants, prints the team balance, audits it as the operator (no actor); refuses bad use', async () => {
      const owner = await createUser(h.db);
      const teamId = await createTeam(h.db, owner.userId);
      const out = await runAdmin([
        'grant',
        '--team',
        teamId,
        '--credits',
        '300',
        '--reason',
        'enterprise deal',
      ]);
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      expect(out.stdout).toContain(`granted 300 credits to team ${teamId}`);
      expect(out.stdout).toContain('balance: available 300, reserved 0, spent 0');
      expect(await balanceOf(owner, teamId)).toMatchObject({ available: 300, granted: 300 });
      expect(await auditOf(teamId)).toEqual([
        {
          action: 'credits.granted',
          actor_user_id: null,
          actor_api_key_id: null,
          target_id: expect.any(String),
          after: { credits: 300, reason: 'enterprise deal', expiresAt: null },
          request_id: null,
        },
      ]);

      const unknown = await runAdmin(['grant', '--team', randomUUID(), '--credits', '10']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain('no team');
      const bad: [string[], string][] = [
        [['grant', '--team', 'acme', '--credits', '10'], '--team must be a team id'],
        [
          ['grant', '--team', teamId, '--email', owner.email, '--credits', '10'],
          'give --email or --team, not both',
        ],
        [['grant', '--team', teamId, '--credits', '0'], '--credits must be a whole number'],
      ];
      for (const [args, message] of bad) {
        const res = await runAdmin(args);
        expect(res.code, args.join(' ')).toBe(64);
        expect(res.stderr, args.join(' ')).toContain(message);
      }
      expect(await balanceOf(owner, teamId)).toMatchObject({ available: 300, granted: 300 });
    });
  });
});
