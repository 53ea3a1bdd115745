// Team webhook endpoints end to end: API, worker, Temporal and Postgres, with a receiver on 127.0.0.1.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withUserTx } from '../../lib/db/pool';
import { MAX_WEBHOOK_ENDPOINTS } from '../../lib/webhooks/endpoints-store';
import { generateWebhookSecret, verifyStandardWebhook } from '../../lib/webhooks/signing';
import { webhookDeps } from '../../worker/create-worker';
import {
  createUser,
  startApi,
  startHarness,
  testConfig,
  waitFor,
  type ApiHarness,
  type Harness,
} from '../support/context';
import { addMember, createTeam, grantTeam, removeMember } from '../support/teams';
import {
  startWebhookReceiver,
  type ReceivedWebhook,
  type WebhookReceiver,
} from '../support/webhook-receiver';

type User = Awaited<ReturnType<typeof createUser>>;
type Auth = { auth: Record<string, string> };

const ENV = {
  LOCAL_PROVIDER_LATENCY_MS: '1500',
  WEBHOOK_RETRY_INITIAL_MS: '200',
  WEBHOOK_RETRY_MAX_INTERVAL_MS: '400',
  WEBHOOK_MAX_ATTEMPTS: '3',
};
const MODEL = 'imagen4-ultra';

const verifies = (secret: string, hook: ReceivedWebhook) =>
  verifyStandardWebhook(
    secret,
    hook.headers as Record<string, string>,
    Buffer.from(hook.body),
    Math.floor(Date.now() / 1000),
  ).ok;

/**
 * Outgoing webhooks of a team (issue 13, "Operators and clients"): endpoints registered for the team
 * by its admins get every team generation's end, each signed with its own secret, besides the
 * creator's own targets; a creator who left the team gets nothing of it any more.
 */
describe('team webhook endpoints', () => {
  let h: Harness;
  let receiver: WebhookReceiver;
  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    h = await startHarness(ENV, {
      webhooks: { ...webhookDeps(testConfig(ENV)), assetSigningKey: async () => Buffer.alloc(32, 7) },
    });
  });
  afterAll(async () => {
    await h?.stop();
    await receiver?.close();
  });

  const call = (who: Auth, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    h.app.inject({ method, url, headers: who.auth, ...(payload ? { payload } : {}) });

  async function team() {
    const owner = await createUser(h.db);
    const teamId = await createTeam(h.db, owner.userId);
    const [admin, member, viewer] = [
      await createUser(h.db),
      await createUser(h.db, 100),
      await createUser(h.db),
    ];
    await addMember(h.db, teamId, owner.userId, admin, 'admin');
    await addMember(h.db, teamId, owner.userId, member, 'member');
    await addMember(h.db, teamId, owner.userId, viewer, 'viewer');
    await grantTeam(teamId, 1000);
    return { teamId, owner, admin, member, viewer, outsider: await createUser(h.db) };
  }

  async function registerTeam(who: User, teamId: string, payload: object) {
    const res = await call(who, 'POST', `/v1/teams/${teamId}/webhook-endpoints`, payload);
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; secret: string; teamId: string; createdBy: string };
  }

  async function registerOwn(who: User, payload: object) {
    const res = await call(who, 'POST', '/v1/webhook-endpoints', payload);
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; secret: string };
  }

  async function submit(who: User, payload: object) {
    const res = await call(who, 'POST', '/v1/generations', {
      model: MODEL,
      input: { prompt: 'harbour' },
      ...payload,
    });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().id as string;
  }

  const arrived = (path: string, n = 1) =>
    waitFor(
      async () => receiver.at(path),
      (r) => r.length >= n,
    );

  it('is registered, listed, read, rotated and deleted by admins; members and outsiders are refused', async () => {
    const t = await team();
    const res = await call(t.admin, 'POST', `/v1/teams/${t.teamId}/webhook-endpoints`, {
      url: 'http://127.0.0.1:9/team',
      events: ['generation.succeeded'],
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const endpoint = res.json();
    expect(endpoint).toMatchObject({
      url: 'http://127.0.0.1:9/team',
      events: ['generation.succeeded'],
      status: 'enabled',
      teamId: t.teamId,
      createdBy: t.admin.userId,
      previousSecretExpiresAt: null,
    });
    expect(endpoint.secret).toMatch(/^whsec_/);
    expect(res.headers.location).toBe(`/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}`);
    const { secret: _secret, previousSecretExpiresAt: _p, ...shown } = endpoint;

    const own = await registerOwn(t.admin, { url: 'http://127.0.0.1:9/own' });
    // The team's list holds the team's; the personal one the admin's own only; each id is foreign to the other.
    expect((await call(t.owner, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints`)).json()).toEqual({
      data: [shown],
      nextCursor: null,
    });
    const personal = (await call(t.admin, 'GET', '/v1/webhook-endpoints')).json().data as { id: string }[];
    expect(personal.map((e) => e.id)).toEqual([own.id]);
    expect((await call(t.admin, 'GET', `/v1/webhook-endpoints/${endpoint.id}`)).statusCode).toBe(404);
    expect((await call(t.admin, 'DELETE', `/v1/webhook-endpoints/${endpoint.id}`)).statusCode).toBe(404);
    expect((await call(t.admin, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints/${own.id}`)).statusCode).toBe(
      404,
    );
    expect(
      (await call(t.owner, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}`)).json(),
    ).toEqual(shown);

    for (const who of [t.member, t.viewer]) {
      for (const [method, url, body] of [
        ['POST', `/v1/teams/${t.teamId}/webhook-endpoints`, { url: 'http://127.0.0.1:9/x' }],
        ['GET', `/v1/teams/${t.teamId}/webhook-endpoints`, undefined],
        ['GET', `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}`, undefined],
        ['GET', `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}/deliveries`, undefined],
        ['POST', `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}/rotate-secret`, undefined],
        ['DELETE', `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}`, undefined],
      ] as const) {
        const refused = await call(who, method, url, body);
        expect(refused.statusCode, `${method} ${url}`).toBe(403);
        expect(refused.json()).toMatchObject({ code: 'forbidden', requiredRole: 'admin' });
      }
    }
    for (const teamId of [t.teamId, randomUUID()]) {
      const refused = await call(t.outsider, 'POST', `/v1/teams/${teamId}/webhook-endpoints`, {
        url: 'http://127.0.0.1:9/x',
      });
      expect(refused.statusCode).toBe(404);
      expect(refused.json()).toMatchObject({ code: 'not_found', detail: 'Team not found.' });
      expect((await call(t.outsider, 'GET', `/v1/teams/${teamId}/webhook-endpoints`)).statusCode).toBe(404);
    }
    for (const body of [
      { url: 'not a url' },
      { url: 'http://127.0.0.1:9/x', events: ['generation.started'] },
      {},
    ]) {
      const bad = await call(t.admin, 'POST', `/v1/teams/${t.teamId}/webhook-endpoints`, body);
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
      expect(
        bad
          .json()
          .errors.map((e: { path: string }) => e.path)
          .join(),
      ).toMatch(/url|events/);
    }

    const rotated = await call(
      t.admin,
      'POST',
      `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}/rotate-secret`,
    );
    expect(rotated.statusCode).toBe(200);
    expect(rotated.json().secret).not.toBe(endpoint.secret);
    expect(rotated.json().previousSecretExpiresAt).not.toBeNull();

    expect(
      (await call(t.owner, 'DELETE', `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}`)).statusCode,
    ).toBe(204);
    expect(
      (await call(t.owner, 'DELETE', `/v1/teams/${t.teamId}/webhook-endpoints/${endpoint.id}`)).statusCode,
    ).toBe(404);
    expect((await call(t.owner, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints`)).json().data).toEqual([]);
    // Nothing was registered by any refusal.
    const { rows } = await h.systemDb.query(
      'SELECT count(*)::int AS n FROM webhook_endpoints WHERE team_id = $1',
      [t.teamId],
    );
    expect(rows[0].n).toBe(1);
  });

  it(`holds at most ${MAX_WEBHOOK_ENDPOINTS} endpoints per team, apart from its admins' own`, async () => {
    const t = await team();
    await withUserTx(h.db, t.admin.userId, async (tx) => {
      for (let i = 0; i < MAX_WEBHOOK_ENDPOINTS; i++) {
        await tx.query(
          `INSERT INTO webhook_endpoints (team_id, created_by, url, secret) VALUES ($1, $2, $3, $4)`,
          [t.teamId, t.admin.userId, `http://127.0.0.1:9/${i}`, generateWebhookSecret()],
        );
      }
    });
    const refused = await call(t.admin, 'POST', `/v1/teams/${t.teamId}/webhook-endpoints`, {
      url: 'http://127.0.0.1:9/more',
    });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().code).toBe('too_many_webhook_endpoints');
    await registerOwn(t.admin, { url: 'http://127.0.0.1:9/mine' });
  });

  it('refuses the URLs the personal route refuses (400 invalid_webhook_url)', async () => {
    const strict: ApiHarness = await startApi({
      WEBHOOK_ALLOW_PRIVATE_URLS: 'false',
      WEBHOOK_ALLOW_HTTP: 'false',
    });
    try {
      const owner = await createUser(strict.db);
      const teamId = await createTeam(strict.db, owner.userId);
      for (const url of ['http://hooks.example.com/x', 'https://127.0.0.1/x', 'https://10.1.2.3/x']) {
        const res = await strict.app.inject({
          method: 'POST',
          url: `/v1/teams/${teamId}/webhook-endpoints`,
          headers: owner.auth,
          payload: { url },
        });
        expect(res.statusCode, url).toBe(400);
        expect(res.json()).toMatchObject({ code: 'invalid_webhook_url', errors: [{ path: 'url' }] });
      }
    } finally {
      await strict.stop();
    }
  });

  it("sends a team generation to the team's endpoints and to its creator's own, each signed with its own secret", async () => {
    const t = await team();
    const teamHook = await registerTeam(t.admin, t.teamId, { url: receiver.url('/t1/team') });
    const flaky = await registerTeam(t.owner, t.teamId, {
      url: receiver.url('/t1/team-flaky', (n) => ({ status: n === 0 ? 500 : 204 })),
    });
    const onlyFailed = await registerTeam(t.admin, t.teamId, {
      url: receiver.url('/t1/team-failed-only'),
      events: ['generation.failed'],
    });
    const memberHook = await registerOwn(t.member, { url: receiver.url('/t1/member') });
    const adminHook = await registerOwn(t.admin, { url: receiver.url('/t1/admin-own') });

    const id = await submit(t.member, { teamId: t.teamId, webhookUrl: receiver.url('/t1/generation-url') });
    await arrived('/t1/team');
    await arrived('/t1/member');
    await arrived('/t1/generation-url');
    await arrived('/t1/team-flaky', 2);
    await sleep(800); // nothing more comes

    const [team1] = receiver.at('/t1/team');
    const [mine] = receiver.at('/t1/member');
    const [own] = receiver.at('/t1/generation-url');
    expect(verifies(teamHook.secret, team1!)).toBe(true);
    expect(verifies(memberHook.secret, team1!)).toBe(false);
    expect(verifies(memberHook.secret, mine!)).toBe(true);
    expect(verifies(teamHook.secret, mine!)).toBe(false);
    const { secret: accountSecret } = (await call(t.member, 'GET', '/v1/webhooks/secret')).json();
    expect(verifies(accountSecret, own!)).toBe(true);
    expect(receiver.at('/t1/team-flaky').every((hook) => verifies(flaky.secret, hook))).toBe(true);
    // One event, the same bytes everywhere.
    expect(new Set([team1, mine, own, ...receiver.at('/t1/team-flaky')].map((r) => r!.body)).size).toBe(1);
    expect(JSON.parse(team1!.body)).toMatchObject({
      type: 'generation.succeeded',
      data: { id, status: 'succeeded' },
    });
    // Not to an endpoint that does not want it, nor to an admin's own endpoints (not the creator's).
    expect(receiver.at('/t1/team-failed-only')).toEqual([]);
    expect(
      (
        await call(t.admin, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints/${onlyFailed.id}/deliveries`)
      ).json().data,
    ).toEqual([]);
    expect(receiver.at('/t1/admin-own')).toEqual([]);
    expect(receiver.at('/t1/team')).toHaveLength(1);

    // The team's deliveries are the admins' to read; the creator's list holds its own targets only.
    const teamDeliveries = (
      await call(t.admin, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints/${flaky.id}/deliveries`)
    ).json().data;
    expect(teamDeliveries).toEqual([
      expect.objectContaining({ generationId: id, endpointId: flaky.id, status: 'delivered', attempts: 2 }),
    ]);
    const creatorList = (await call(t.member, 'GET', `/v1/webhooks/deliveries?generationId=${id}`)).json()
      .data as {
      endpointId: string | null;
    }[];
    expect(creatorList.map((d) => d.endpointId).sort()).toEqual([memberHook.id, null].sort());
    expect((await call(t.admin, 'GET', `/v1/webhooks/deliveries?generationId=${id}`)).json().data).toEqual(
      [],
    );
    expect(
      (await call(t.member, 'GET', `/v1/webhooks/deliveries?endpointId=${teamHook.id}`)).json().data,
    ).toEqual([]);
    expect(
      (await call(t.admin, 'GET', `/v1/webhook-endpoints/${adminHook.id}/deliveries`)).json().data,
    ).toEqual([]);

    // A personal generation of the same member is not the team's business.
    const mineOnly = await submit(t.member, {});
    await waitFor(
      async () => receiver.at('/t1/member'),
      (r) => r.length >= 2,
    );
    await sleep(500);
    expect(receiver.at('/t1/team')).toHaveLength(1);
    expect(JSON.parse(receiver.at('/t1/member')[1]!.body).data.id).toBe(mineOnly);
  });

  it("stops sending to a creator who left the team, while the team's endpoints still get its generation", async () => {
    const t = await team();
    const teamHook = await registerTeam(t.admin, t.teamId, { url: receiver.url('/t2/team') });
    await registerOwn(t.member, { url: receiver.url('/t2/member') });
    const id = await submit(t.member, { teamId: t.teamId, webhookUrl: receiver.url('/t2/generation-url') });
    // Removed while its generation runs: it still settles, and its end is the team's news only.
    await removeMember(t.teamId, t.member.userId);
    const [hook] = await arrived('/t2/team');
    expect(verifies(teamHook.secret, hook!)).toBe(true);
    expect(JSON.parse(hook!.body)).toMatchObject({ type: 'generation.succeeded', data: { id } });
    await sleep(800);
    expect(receiver.at('/t2/member')).toEqual([]);
    expect(receiver.at('/t2/generation-url')).toEqual([]);
    expect((await call(t.member, 'GET', `/v1/webhooks/deliveries?generationId=${id}`)).json().data).toEqual(
      [],
    );
    const delivered = (
      await call(t.owner, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints/${teamHook.id}/deliveries`)
    ).json().data;
    expect(delivered).toEqual([
      expect.objectContaining({ generationId: id, status: 'delivered', attempts: 1 }),
    ]);
  });

  it('disables a team endpoint that answers 410 Gone, and gives up on one that keeps failing', async () => {
    const t = await team();
    const gone = await registerTeam(t.admin, t.teamId, {
      url: receiver.url('/t3/gone', () => ({ status: 410 })),
    });
    const down = await registerTeam(t.admin, t.teamId, {
      url: receiver.url('/t3/down', () => ({ status: 503 })),
    });
    const deliveries = (endpointId: string) =>
      call(t.admin, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints/${endpointId}/deliveries`).then(
        (r) => r.json().data as { status: string; attempts: number; lastStatusCode: number | null }[],
      );
    await submit(t.member, { teamId: t.teamId });
    const [goneDelivery] = await waitFor(
      () => deliveries(gone.id),
      (d) => d[0]?.status === 'gone',
    );
    expect(goneDelivery).toMatchObject({ attempts: 1, lastStatusCode: 410 });
    const shown = (await call(t.admin, 'GET', `/v1/teams/${t.teamId}/webhook-endpoints/${gone.id}`)).json();
    expect(shown).toMatchObject({ status: 'disabled', disabledReason: expect.stringMatching(/410/) });
    const [downDelivery] = await waitFor(
      () => deliveries(down.id),
      (d) => d[0]?.status === 'failed',
    );
    expect(downDelivery).toMatchObject({ attempts: 3, lastStatusCode: 503 });

    // A disabled endpoint gets nothing more.
    await submit(t.member, { teamId: t.teamId });
    await waitFor(
      () => deliveries(down.id),
      (d) => d.length === 2 && d.every((x) => x.status === 'failed'),
    );
    expect(receiver.at('/t3/gone')).toHaveLength(1);
  });

  it('keeps team endpoints and deliveries to the team admins at the database, and their making to the worker', async () => {
    const t = await team();
    const teamHook = await registerTeam(t.admin, t.teamId, { url: receiver.url('/t4/team') });
    const id = await submit(t.member, { teamId: t.teamId });
    await arrived('/t4/team');
    const seen = (userId: string, sql: string) =>
      withUserTx(h.db, userId, async (tx) => (await tx.query(sql, [t.teamId])).rowCount);
    for (const [who, n] of [
      [t.owner, 1],
      [t.admin, 1],
      [t.member, 0],
      [t.viewer, 0],
      [t.outsider, 0],
    ] as const) {
      expect(
        await seen(who.userId, 'SELECT secret FROM webhook_endpoints WHERE team_id = $1'),
        who.email,
      ).toBe(n);
      expect(await seen(who.userId, 'SELECT url FROM webhook_deliveries WHERE team_id = $1'), who.email).toBe(
        n,
      );
      expect(await seen(who.userId, 'SELECT body FROM webhook_events WHERE team_id = $1'), who.email).toBe(
        who === t.member ? 1 : n, // the creator reads its own generation's event
      );
    }
    // Nobody makes a team delivery or event through velro_app (the worker's system path does), nor
    // registers a team endpoint in another's name or for a team it does not administer.
    const [event] = (await h.systemDb.query('SELECT id FROM webhook_events WHERE generation_id = $1', [id]))
      .rows;
    const refusedSql: [User, string, unknown[]][] = [
      [
        t.admin,
        `INSERT INTO webhook_deliveries (id, event_id, user_id, team_id, endpoint_id, url)
         VALUES (gen_random_uuid(), $1, $2, $3, $4, 'http://127.0.0.1:9/forged')`,
        [event.id, t.admin.userId, t.teamId, teamHook.id],
      ],
      [
        t.member,
        `INSERT INTO webhook_events (id, user_id, team_id, type, body) VALUES (gen_random_uuid(), $1, $2, 'generation.succeeded', '{}')`,
        [t.member.userId, t.teamId],
      ],
      [
        t.member,
        `INSERT INTO webhook_endpoints (team_id, created_by, url, secret) VALUES ($1, $2, 'http://127.0.0.1:9/x', $3)`,
        [t.teamId, t.member.userId, generateWebhookSecret()],
      ],
      [
        t.admin,
        `INSERT INTO webhook_endpoints (team_id, created_by, url, secret) VALUES ($1, $2, 'http://127.0.0.1:9/x', $3)`,
        [t.teamId, t.owner.userId, generateWebhookSecret()],
      ],
    ];
    for (const [who, sql, params] of refusedSql) {
      await expect(
        withUserTx(h.db, who.userId, (tx) => tx.query(sql, params)),
        sql,
      ).rejects.toMatchObject({ code: '42501' });
    }
    // A member cannot disable or delete the team's endpoint behind the API either.
    const touched = await withUserTx(h.db, t.member.userId, (tx) =>
      tx.query('UPDATE webhook_endpoints SET deleted_at = now() WHERE team_id = $1', [t.teamId]),
    );
    expect(touched.rowCount).toBe(0);
  });
});
