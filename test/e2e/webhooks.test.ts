// Outgoing webhooks end to end: API, worker, Temporal and Postgres, with a receiver on 127.0.0.1.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import { withUserTx } from '../../lib/db/pool';
import { verifyStandardWebhook } from '../../lib/webhooks/signing';
import { activityDeps, webhookDeps } from '../../worker/create-worker';
import { createUser, startHarness, systemDb, testConfig, waitFor, type Harness } from '../support/context';
import {
  startWebhookReceiver,
  type ReceivedWebhook,
  type WebhookReceiver,
} from '../support/webhook-receiver';

type Auth = { authorization: string };

const ENV = {
  LOCAL_PROVIDER_LATENCY_MS: '800',
  WEBHOOK_RETRY_INITIAL_MS: '200',
  WEBHOOK_RETRY_MAX_INTERVAL_MS: '400',
  WEBHOOK_MAX_ATTEMPTS: '4',
  WEBHOOK_SECRET_OVERLAP_SECONDS: '4',
};

/** Whether `secret` verifies a received webhook (Standard Webhooks v1, ±5 min). */
function verifies(secret: string, hook: ReceivedWebhook): boolean {
  return verifyStandardWebhook(
    secret,
    hook.headers as Record<string, string>,
    Buffer.from(hook.body),
    Math.floor(Date.now() / 1000),
  ).ok;
}

describe('outgoing webhooks, end to end', () => {
  let h: Harness;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    h = await startHarness(ENV, {
      // The worker signs output URLs with the key the test API checks them with.
      webhooks: { ...webhookDeps(testConfig(ENV)), assetSigningKey: async () => Buffer.alloc(32, 7) },
    });
  });
  afterAll(async () => {
    await h?.stop();
    await receiver?.close();
  });

  async function submit(auth: Auth, extra: Record<string, unknown> = {}) {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: auth,
      payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: 'a lighthouse at dusk' }, ...extra },
    });
    expect(res.statusCode, res.body).toBe(202);
    return res.json() as { id: string };
  }

  const generation = async (auth: Auth, id: string) =>
    (await h.app.inject({ url: `/v1/generations/${id}`, headers: auth })).json();

  const ended = (auth: Auth, id: string) =>
    waitFor(
      () => generation(auth, id),
      (g) => !['queued', 'running'].includes(g.status),
    );

  const deliveries = async (auth: Auth, query = '') =>
    (await h.app.inject({ url: `/v1/webhooks/deliveries${query}`, headers: auth })).json().data as {
      status: string;
      attempts: number;
      lastStatusCode: number | null;
      endpointId: string | null;
      eventType: string;
      lastError: string | null;
      deliveredAt: string | null;
    }[];

  const register = async (auth: Auth, payload: object) => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/webhook-endpoints', headers: auth, payload });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; secret: string };
  };

  it("sends one signed generation.succeeded to the generation's webhookUrl, verifiable with the account secret", async () => {
    const user = await createUser(h.db, 100);
    const url = receiver.url('/per-generation');
    const { id } = await submit(user.auth, { webhookUrl: url });
    const hooks = await waitFor(
      async () => receiver.at('/per-generation'),
      (r) => r.length >= 1,
    );
    await sleep(1000); // nothing more comes
    expect(receiver.at('/per-generation')).toHaveLength(1);
    const hook = hooks[0]!;

    const { secret } = (await h.app.inject({ url: '/v1/webhooks/secret', headers: user.auth })).json();
    expect(verifies(secret, hook)).toBe(true);
    expect(hook.headers['content-type']).toBe('application/json');
    expect(hook.headers['user-agent']).toMatch(/^Velro-Webhooks\//);
    const ts = Number(hook.headers['webhook-timestamp']);
    expect(Math.abs(ts - hook.at / 1000)).toBeLessThan(5);

    const event = JSON.parse(hook.body);
    expect(event).toMatchObject({ type: 'generation.succeeded', id: hook.headers['webhook-id'] });
    expect(Date.parse(event.createdAt)).not.toBeNaN();
    // The generation as GET shows it; output URLs are signed for the receiver and work.
    const shown = await generation(user.auth, id);
    const withoutUrls = (g: { outputs: { url: string }[] }) => ({
      ...g,
      outputs: g.outputs.map(({ url: _url, ...o }) => o),
    });
    expect(withoutUrls(event.data)).toEqual(withoutUrls(shown));
    expect(event.data).toMatchObject({ status: 'succeeded', credits: { amount: 50, state: 'charged' } });
    const asset = new URL(event.data.outputs[0].url);
    const file = await h.app.inject({ url: asset.pathname + asset.search });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-type']).toBe('image/png');

    const [delivery] = await deliveries(user.auth, `?generationId=${id}`);
    expect(delivery).toMatchObject({
      status: 'delivered',
      attempts: 1,
      lastStatusCode: 204,
      endpointId: null,
      eventType: 'generation.succeeded',
      lastError: null,
    });
    expect(delivery!.deliveredAt).not.toBeNull();
  });

  it('sends registered endpoints only the events they subscribe to', async () => {
    const user = await createUser(h.db, 200);
    const succeeded = await register(user.auth, {
      url: receiver.url('/filter-succeeded'),
      events: ['generation.succeeded'],
    });
    const canceled = await register(user.auth, {
      url: receiver.url('/filter-canceled'),
      events: ['generation.canceled'],
    });
    const everything = await register(user.auth, { url: receiver.url('/filter-all') });

    const ok = await submit(user.auth);
    await ended(user.auth, ok.id);
    const stopped = await submit(user.auth);
    const cancel = await h.app.inject({
      method: 'POST',
      url: `/v1/generations/${stopped.id}/cancel`,
      headers: user.auth,
    });
    expect(cancel.statusCode).toBe(202);
    expect((await ended(user.auth, stopped.id)).status).toBe('canceled');

    await waitFor(
      async () => receiver.at('/filter-all'),
      (r) => r.length >= 2,
    );
    await waitFor(
      async () => [...receiver.at('/filter-succeeded'), ...receiver.at('/filter-canceled')],
      (r) => r.length >= 2,
    );
    await sleep(1000);
    const types = (path: string) => receiver.at(path).map((r) => JSON.parse(r.body).type);
    expect(types('/filter-succeeded')).toEqual(['generation.succeeded']);
    expect(types('/filter-canceled')).toEqual(['generation.canceled']);
    expect(types('/filter-all').sort()).toEqual(['generation.canceled', 'generation.succeeded']);

    // Each endpoint's deliveries are signed with its own secret; one event id for all targets.
    expect(verifies(succeeded.secret, receiver.at('/filter-succeeded')[0]!)).toBe(true);
    expect(verifies(canceled.secret, receiver.at('/filter-canceled')[0]!)).toBe(true);
    expect(verifies(succeeded.secret, receiver.at('/filter-canceled')[0]!)).toBe(false);
    expect(receiver.at('/filter-all').every((hook) => verifies(everything.secret, hook))).toBe(true);
    const okEvent = receiver.at('/filter-succeeded')[0]!.headers['webhook-id'];
    expect(receiver.at('/filter-all').map((r) => r.headers['webhook-id'])).toContain(okEvent);

    const listed = (
      await h.app.inject({ url: `/v1/webhook-endpoints/${everything.id}/deliveries`, headers: user.auth })
    ).json().data;
    expect(listed).toHaveLength(2);
    expect(listed.every((d: { status: string }) => d.status === 'delivered')).toBe(true);
  });

  it('retries a failing receiver with backoff until it answers: delivered on the 3rd attempt', async () => {
    const user = await createUser(h.db, 100);
    const url = receiver.url('/flaky', (n) => ({ status: n < 2 ? 500 : 204 }));
    const { id } = await submit(user.auth, { webhookUrl: url });
    await waitFor(
      async () => receiver.at('/flaky'),
      (r) => r.length >= 3,
    );
    await waitFor(
      () => deliveries(user.auth, `?generationId=${id}`),
      (d) => d[0]?.status === 'delivered',
    );
    await sleep(1000);
    const hooks = receiver.at('/flaky');
    expect(hooks).toHaveLength(3);
    // The same message every time: same id and body, a fresh timestamp and signature per attempt.
    expect(new Set(hooks.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(new Set(hooks.map((r) => r.body)).size).toBe(1);
    const { secret } = (await h.app.inject({ url: '/v1/webhooks/secret', headers: user.auth })).json();
    expect(hooks.every((hook) => verifies(secret, hook))).toBe(true);
    expect(hooks[1]!.at - hooks[0]!.at).toBeGreaterThanOrEqual(150);
    expect((await deliveries(user.auth, `?generationId=${id}`))[0]).toMatchObject({
      status: 'delivered',
      attempts: 3,
      lastStatusCode: 204,
    });
  });

  it('disables an endpoint that answers 410 Gone, and sends it nothing more', async () => {
    const user = await createUser(h.db, 200);
    const endpoint = await register(user.auth, { url: receiver.url('/gone', () => ({ status: 410 })) });
    const first = await submit(user.auth);
    await waitFor(
      () => deliveries(user.auth, `?endpointId=${endpoint.id}`),
      (d) => d[0]?.status === 'gone',
    );
    expect((await deliveries(user.auth, `?endpointId=${endpoint.id}`))[0]).toMatchObject({
      attempts: 1,
      lastStatusCode: 410,
    });
    const shown = (
      await h.app.inject({ url: `/v1/webhook-endpoints/${endpoint.id}`, headers: user.auth })
    ).json();
    expect(shown).toMatchObject({ status: 'disabled', disabledReason: expect.stringMatching(/410/) });
    expect((await ended(user.auth, first.id)).status).toBe('succeeded');

    const second = await submit(user.auth);
    await ended(user.auth, second.id);
    await sleep(1500);
    expect(receiver.at('/gone')).toHaveLength(1);
    expect(await deliveries(user.auth, `?endpointId=${endpoint.id}`)).toHaveLength(1);
  });

  it('gives up on a receiver that keeps failing, after the bounded attempts, without touching credits', async () => {
    const user = await createUser(h.db, 100);
    const { id } = await submit(user.auth, { webhookUrl: receiver.url('/down', () => ({ status: 503 })) });
    expect((await ended(user.auth, id)).status).toBe('succeeded');
    const settled = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    expect(settled).toEqual({ available: 50, reserved: 0, spent: 50 });

    const [given] = await waitFor(
      () => deliveries(user.auth, `?generationId=${id}`),
      (d) => d[0]?.status === 'failed',
    );
    expect(given).toMatchObject({ attempts: 4, lastStatusCode: 503, deliveredAt: null });
    expect(given!.lastError).toMatch(/^HTTP 503/);
    expect(receiver.at('/down')).toHaveLength(4);

    expect((await h.app.inject({ url: '/v1/credits', headers: user.auth })).json()).toEqual(settled);
    const ledger = await withUserTx(h.db, user.userId, (tx) =>
      tx.query<{ kind: string }>(
        'SELECT kind FROM credit_transfers WHERE generation_id = $1 ORDER BY created_at',
        [id],
      ),
    );
    expect(ledger.rows.map((r) => r.kind)).toEqual(['reserve', 'commit']);
    expect((await generation(user.auth, id)).credits).toEqual({ amount: 50, state: 'charged' });
  });

  it('signs with both secrets during a rotation overlap, and with the new one alone after it', async () => {
    const user = await createUser(h.db, 200);
    const old = (await h.app.inject({ url: '/v1/webhooks/secret', headers: user.auth })).json().secret;
    const rotated = (
      await h.app.inject({ method: 'POST', url: '/v1/webhooks/secret/rotate', headers: user.auth })
    ).json();

    await submit(user.auth, { webhookUrl: receiver.url('/rotation-1') });
    const [during] = await waitFor(
      async () => receiver.at('/rotation-1'),
      (r) => r.length >= 1,
    );
    // Sent within the overlap (WEBHOOK_SECRET_OVERLAP_SECONDS), so signed with both secrets.
    expect(during!.at).toBeLessThan(Date.parse(rotated.previousSecretExpiresAt));
    expect(String(during!.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifies(rotated.secret, during!)).toBe(true);
    expect(verifies(old, during!)).toBe(true);

    await sleep(Math.max(0, Date.parse(rotated.previousSecretExpiresAt) - Date.now() + 200));
    await submit(user.auth, { webhookUrl: receiver.url('/rotation-2') });
    const [after] = await waitFor(
      async () => receiver.at('/rotation-2'),
      (r) => r.length >= 1,
    );
    expect(String(after!.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(verifies(rotated.secret, after!)).toBe(true);
    expect(verifies(old, after!)).toBe(false);
  });

  it('records one event per generation end: repeating the notify step returns the same deliveries', async () => {
    const user = await createUser(h.db, 100);
    const endpoint = await register(user.auth, { url: receiver.url('/repeat') });
    const { id } = await submit(user.auth);
    await ended(user.auth, id);
    await waitFor(
      async () => receiver.at('/repeat'),
      (r) => r.length >= 1,
    );
    const activities = createActivities(activityDeps(h.config, partsOf(h)));
    const again = await activities.createWebhookEvent({
      userId: user.userId,
      generationId: id,
      webhookUrl: null,
    });
    const twice = await activities.createWebhookEvent({
      userId: user.userId,
      generationId: id,
      webhookUrl: null,
    });
    expect(twice).toEqual(again);
    expect(again.deliveries).toEqual([
      { deliveryId: expect.any(String), workflowId: `webhook-${again.eventId}-${endpoint.id}` },
    ]);
    await sleep(500);
    expect(receiver.at('/repeat')).toHaveLength(1);
    const events = await withUserTx(h.db, user.userId, (tx) =>
      tx.query('SELECT id FROM webhook_events WHERE generation_id = $1', [id]),
    );
    expect(events.rowCount).toBe(1);
  });
});

/** What activityDeps needs beyond the configuration (only the database matters here). */
function partsOf(h: Harness) {
  return {
    db: h.db,
    systemDb: systemDb(),
    storage: undefined as never,
    providers: { local: undefined, fal: undefined, replicate: undefined },
    workflowState: async () => 'closed' as const,
    stoppedGenerations: async () => [],
  };
}
