import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, waitFor, type Harness } from '../support/context';
import { startFakeReplicate, type FakeReplicate } from '../fakes/replicate-server';
import {
  pollingFaultCases,
  webhookDrivenFaultCases,
  type FaultTarget,
} from '../support/provider-fault-cases';
import {
  expectChargedOnce,
  expectRefundedOnce,
  fetchOutput,
  getGeneration,
  postWebhook,
  settled,
  sleep,
  startListeningHarness,
  submit,
} from '../support/provider-e2e';

// Every test gets its own prompt: the fake keys its faults and create counts by prompt.
let n = 0;
const prompt = (faults = '') => `${faults} a harbour ${++n} ${Date.now()}`.trim();

const replicateEnv = (fake: FakeReplicate, pollMs: number) => ({
  VELRO_PROVIDER: 'replicate',
  REPLICATE_API_TOKEN: 'r8_test',
  REPLICATE_API_URL: fake.url,
  REPLICATE_WEBHOOK_SECRET: fake.secret,
  PROVIDER_POLL_INITIAL_MS: String(pollMs),
  PROVIDER_HTTP_TIMEOUT_MS: '1000',
});

const gets = (fake: FakeReplicate, id: string) =>
  fake.requests.filter((r) => r.method === 'GET' && r.path === `/v1/predictions/${id}`);
const creates = (fake: FakeReplicate, p: string) =>
  fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions') && r.body.includes(p));

/** Replicate for the shared fault cases (test/support/provider-fault-cases.ts), on a describe's harness and fake. */
function replicateTarget(current: () => { h: Harness; fake: FakeReplicate }): FaultTarget {
  const fake = () => current().fake;
  const prediction = (p: string) => fake().predictionFor(p)!;
  return {
    harness: () => current().h,
    prompt,
    words: { start: 'create', poll: 'GET', pollAnswer: 'answer', failedJob: 'failed prediction' },
    faults: {
      start429: '#create-429',
      start503: '#create-503',
      start422: '#invalid-input',
      failed: '#failed',
      pollHang: '#get-hang',
      poll500: '#get-500',
      pollMalformed: '#get-malformed',
    },
    messages: { failed: 'CUDA', start422: 'input.aspect_ratio' },
    starts: (p) => creates(fake(), p),
    jobsWith: (p) => [...fake().predictions.values()].filter((x) => x.input.prompt === p),
    polls: (p) => gets(fake(), prediction(p).id),
    deliveries: (p) => fake().deliveries.filter((d) => d.body.includes(prediction(p).id)),
    outputSha256: (p) => prediction(p).outputs[0]!.file.sha256,
    also: {
      // A duplicate keeps its webhook-id and gets a new timestamp.
      'duplicate-webhooks': ({ deliveries }) =>
        expect(new Set(deliveries!.map((d) => d.headers['webhook-id'])).size).toBe(1),
    },
  };
}

describe('Replicate: webhook-driven generations (polls every 10 s, so only a webhook can make them quick)', () => {
  let fake: FakeReplicate;
  let h: Harness;
  let publicUrl: string;
  beforeAll(async () => {
    fake = await startFakeReplicate();
    ({ h, publicUrl } = await startListeningHarness(replicateEnv(fake, 10_000)));
  });
  afterAll(async () => {
    await h?.stop();
    await fake?.close();
  });

  it('creates a prediction, is woken by the signed webhook, stores the PNG and charges once', async () => {
    const user = await createUser(h.db, 200);
    const p = prompt();
    const started = Date.now();
    const created = await submit(h, user, { prompt: p, aspect_ratio: '1:1' });
    const done = await settled(h, user, created.id);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(done.status).toBe('succeeded');
    expect(done.credits).toEqual({ amount: 50, state: 'charged' });

    const prediction = fake.predictionFor(p)!;
    const [create] = creates(fake, p);
    expect(create!.path).toBe('/v1/models/black-forest-labs/flux-1.1-pro-ultra/predictions');
    expect(create!.headers.authorization).toBe('Bearer r8_test');
    expect(JSON.parse(create!.body)).toEqual({
      input: expect.objectContaining({ prompt: p, aspect_ratio: '1:1' }),
      webhook: `${publicUrl}/v1/provider-webhooks/replicate`,
      webhook_events_filter: ['completed'],
    });
    expect(gets(fake, prediction.id).length).toBeGreaterThanOrEqual(2);
    expect(fake.deliveries.filter((d) => d.body.includes(prediction.id)).map((d) => d.status)).toEqual([200]);

    expect(done.outputs).toHaveLength(1);
    expect(done.outputs[0]).toMatchObject({ contentType: 'image/png', width: 64, height: 64 });
    expect((await fetchOutput(h, done.outputs[0])).sha256).toBe(prediction.outputs[0]!.file.sha256);
    await expectChargedOnce(h, user, created.id, 200, 50);
  });

  it('stores every output of an array of URLs, in order', async () => {
    const user = await createUser(h.db, 200);
    const p = prompt('#array-output');
    const created = await submit(h, user, { prompt: p });
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('succeeded');
    const prediction = fake.predictionFor(p)!;
    expect(done.outputs).toHaveLength(2);
    for (const [i, output] of done.outputs.entries()) {
      expect((await fetchOutput(h, output)).sha256).toBe(prediction.outputs[i]!.file.sha256);
    }
    expect(prediction.outputs[0]!.file.sha256).not.toBe(prediction.outputs[1]!.file.sha256);
    await expectChargedOnce(h, user, created.id, 200, 50);
  });

  webhookDrivenFaultCases(replicateTarget(() => ({ h, fake })));

  it('refuses forged, tampered, stale and replayed webhooks with 401 and changes nothing; cancel reaches Replicate', async () => {
    const user = await createUser(h.db, 200);
    const p = prompt('#slow');
    const created = await submit(h, user, { prompt: p });
    const prediction = await waitFor(
      async () => fake.predictionFor(p),
      (x) => x !== undefined && gets(fake, x.id).length >= 1,
    );
    const id = prediction!.id;
    const running = await waitFor(
      () => getGeneration(h, user, created.id),
      (g) => g.status === 'running',
    );
    const polls = gets(fake, id).length;
    const body = JSON.stringify({ id, status: 'succeeded', output: 'https://evil.example/x.png' });

    const wrongSecret = `whsec_${randomBytes(32).toString('base64')}`;
    const forged = await postWebhook(
      publicUrl,
      'replicate',
      fake.signWebhook(body, { secret: wrongSecret }),
      body,
    );
    expect(forged.status).toBe(401);
    expect(forged.contentType).toContain('application/problem+json');
    expect(forged.body).toMatchObject({ status: 401, code: 'unauthorized' });
    const tampered = await postWebhook(
      publicUrl,
      'replicate',
      fake.signWebhook(body),
      body.replace('evil', 'evil2'),
    );
    expect(tampered.status).toBe(401);
    const old = Math.floor(Date.now() / 1000) - 301;
    expect(
      (await postWebhook(publicUrl, 'replicate', fake.signWebhook(body, { timestamp: old }), body)).status,
    ).toBe(401);
    const future = Math.floor(Date.now() / 1000) + 400;
    expect(
      (await postWebhook(publicUrl, 'replicate', fake.signWebhook(body, { timestamp: future }), body)).status,
    ).toBe(401);
    const unsigned = await postWebhook(publicUrl, 'replicate', { 'content-type': 'application/json' }, body);
    expect(unsigned.status).toBe(401);

    await sleep(500);
    expect(gets(fake, id).length).toBe(polls);
    expect(await getGeneration(h, user, created.id)).toMatchObject({
      status: 'running',
      outputs: [],
      credits: running.credits,
    });

    // A genuine webhook wakes the workflow (one more GET, still running); the same bytes again do not.
    const headers = fake.signWebhook(body);
    expect((await postWebhook(publicUrl, 'replicate', headers, body)).status).toBe(200);
    await waitFor(
      async () => gets(fake, id).length,
      (c) => c > polls,
      5000,
    );
    expect((await getGeneration(h, user, created.id)).status).toBe('running');
    expect((await postWebhook(publicUrl, 'replicate', headers, body)).status).toBe(401);

    const cancel = await h.app.inject({
      method: 'POST',
      url: `/v1/generations/${created.id}/cancel`,
      headers: user.auth,
    });
    expect(cancel.statusCode).toBe(202);
    expect((await settled(h, user, created.id)).status).toBe('canceled');
    await waitFor(
      async () =>
        fake.requests.filter((r) => r.method === 'POST' && r.path === `/v1/predictions/${id}/cancel`),
      (r) => r.length === 1,
      5000,
    );
    expect(prediction!.canceledAt).not.toBeNull();
    await expectRefundedOnce(h, user, created.id, 200, 50);
  });
});

describe('Replicate: generations that webhooks never reach (polling every 300 ms must finish them)', () => {
  let fake: FakeReplicate;
  let h: Harness;
  beforeAll(async () => {
    fake = await startFakeReplicate();
    ({ h } = await startListeningHarness(replicateEnv(fake, 300)));
  });
  afterAll(async () => {
    await h?.stop();
    await fake?.close();
  });

  pollingFaultCases(replicateTarget(() => ({ h, fake })));
});
