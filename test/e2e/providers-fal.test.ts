import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, type Harness } from '../support/context';
import { createUser } from '../support/context';
import { startFakeFal, type FakeFal } from '../fakes/fal-server';
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

// Every test gets its own prompt: the fake keys its faults and submit counts by prompt.
let n = 0;
const prompt = (faults = '') => `${faults} a lighthouse ${++n} ${Date.now()}`.trim();

const falEnv = (fal: FakeFal, pollMs: number) => ({
  VELRO_PROVIDER: 'fal',
  FAL_KEY: 'test',
  FAL_QUEUE_URL: fal.url,
  FAL_JWKS_URL: fal.jwksUrl,
  PROVIDER_POLL_INITIAL_MS: String(pollMs),
  PROVIDER_HTTP_TIMEOUT_MS: '1000',
});

const statusCalls = (fal: FakeFal, requestId: string) =>
  fal.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/requests/${requestId}/status`)).length;

/** fal for the shared fault cases (test/support/provider-fault-cases.ts), on a describe's harness and fake. */
function falTarget(current: () => { h: Harness; fal: FakeFal }): FaultTarget {
  const fal = () => current().fal;
  const job = (p: string) => fal().jobFor(p)!;
  return {
    harness: () => current().h,
    prompt,
    words: {
      start: 'submit',
      poll: 'status call',
      pollAnswer: 'status answer',
      failedJob: 'COMPLETED request whose result is an error',
    },
    faults: {
      start429: '#submit-429',
      start503: '#submit-503',
      start422: '#submit-invalid',
      failed: '#completed-error',
      pollHang: '#status-hang',
      poll500: '#status-500',
      pollMalformed: '#status-malformed',
    },
    messages: { failed: 'runner_server_error', start422: 'prompt' },
    starts: (p) => fal().requests.filter((r) => r.method === 'POST' && r.body.includes(p)),
    jobsWith: (p) => [...fal().jobs.values()].filter((j) => j.input.prompt === p),
    polls: (p) => fal().requests.filter((r) => r.path.endsWith(`/requests/${job(p).requestId}/status`)),
    deliveries: (p) => fal().deliveries.filter((d) => d.body.includes(job(p).requestId)),
    outputSha256: (p) => job(p).output!.file.sha256,
    also: {
      'duplicate-webhooks': ({ prompt: p, after }) =>
        expect(after.outputs[0].sha256).toBe(job(p).output!.file.sha256),
      'start-429': () => expect(fal().jobs.size).toBeGreaterThan(0),
      'start-503': ({ prompt: p }) =>
        expect([...fal().jobs.values()].filter((j) => j.input.prompt === p)).toHaveLength(1),
      'provider-failure': ({ done }) => expect(done.outputs).toEqual([]),
      'content-policy': ({ done }) => expect(done.error.message).toContain('prompt'),
      'output-404': ({ done }) => expect(done.outputs).toEqual([]),
      'no-webhook': ({ prompt: p }) => expect(statusCalls(fal(), job(p).requestId)).toBeGreaterThanOrEqual(2),
      'poll-hang': ({ calls }) => expect(calls!.length).toBeGreaterThanOrEqual(2),
    },
  };
}

describe('fal: webhook-driven generations (polls every 10 s, so only a webhook can make them quick)', () => {
  let fal: FakeFal;
  let h: Harness;
  let publicUrl: string;
  beforeAll(async () => {
    fal = await startFakeFal();
    ({ h, publicUrl } = await startListeningHarness(falEnv(fal, 10_000)));
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
  });

  it('submits on the queue API, is woken by the signed webhook, stores the PNG and charges once', async () => {
    const user = await createUser(h.db, 200);
    const p = prompt();
    const started = Date.now();
    const created = await submit(h, user, { prompt: p, aspect_ratio: '1:1' });
    expect(created.credits).toEqual({ amount: 50, state: 'reserved' });
    const done = await settled(h, user, created.id);
    // The first wait between polls is 10 s: finishing sooner proves the webhook woke the workflow.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(done.status).toBe('succeeded');
    expect(done.credits).toEqual({ amount: 50, state: 'charged' });

    const job = fal.jobFor(p)!;
    const submitReq = fal.requests.find(
      (r) => r.method === 'POST' && r.path === '/fal-ai/flux-pro/v1.1-ultra',
    )!;
    expect(submitReq.headers.authorization).toBe('Key test');
    expect(submitReq.query.get('fal_webhook')).toBe(`${publicUrl}/v1/provider-webhooks/fal`);
    // The body is the model input itself, not {input: …}.
    expect(JSON.parse(submitReq.body)).toMatchObject({ prompt: p, aspect_ratio: '1:1' });
    // Status and result at owner/alias, without the endpoint's subpath.
    expect(statusCalls(fal, job.requestId)).toBeGreaterThanOrEqual(2);
    expect(fal.requests.some((r) => r.path === `/fal-ai/flux-pro/requests/${job.requestId}`)).toBe(true);
    expect(fal.deliveries.filter((d) => d.body.includes(job.requestId)).map((d) => d.status)).toEqual([200]);

    expect(done.outputs).toHaveLength(1);
    expect(done.outputs[0]).toMatchObject({ contentType: 'image/png', width: 64, height: 64 });
    const stored = await fetchOutput(h, done.outputs[0]);
    expect(stored.sha256).toBe(job.output!.file.sha256);
    expect(stored.contentType).toBe('image/png');
    await expectChargedOnce(h, user, created.id, 200, 50);
  });

  it('sends Kontext without an image to its text-to-image endpoint and follows the returned URLs', async () => {
    const user = await createUser(h.db, 200);
    const p = prompt();
    const created = await submit(h, user, { prompt: p }, 'flux-pro-kontext-max');
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('succeeded');
    const job = fal.jobFor(p)!;
    expect(job.endpoint).toBe('fal-ai/flux-pro/kontext/max/text-to-image');
    expect(statusCalls(fal, job.requestId)).toBeGreaterThanOrEqual(1);
    expect((await fetchOutput(h, done.outputs[0])).sha256).toBe(job.output!.file.sha256);
    await expectChargedOnce(h, user, created.id, 200, 60);
  });

  webhookDrivenFaultCases(falTarget(() => ({ h, fal })));

  it('fails a 422 validation error as invalid_input naming the field, and refunds once', async () => {
    const user = await createUser(h.db, 200);
    const created = await submit(h, user, { prompt: prompt('#invalid-input') });
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('invalid_input');
    expect(done.error.message).toContain('aspect_ratio');
    await expectRefundedOnce(h, user, created.id, 200, 50);
  });

  it('refuses forged, tampered, stale and replayed webhooks with 401 and changes nothing; cancel reaches fal', async () => {
    const user = await createUser(h.db, 200);
    const p = prompt('#slow');
    const created = await submit(h, user, { prompt: p });
    const job = await waitFor(
      async () => fal.jobFor(p),
      (j) => j !== undefined && statusCalls(fal, j.requestId) >= 1,
    );
    const running = await waitFor(
      () => getGeneration(h, user, created.id),
      (g) => g.status === 'running',
    );
    const polls = statusCalls(fal, job!.requestId);

    const body = JSON.stringify({
      request_id: job!.requestId,
      gateway_request_id: job!.requestId,
      status: 'OK',
      payload: { images: [{ url: 'https://evil.example/x.png' }] },
    });
    const otherKey = generateKeyPairSync('ed25519').privateKey;
    const forged = await postWebhook(publicUrl, 'fal', fal.signWebhook(body, { privateKey: otherKey }), body);
    expect(forged.status).toBe(401);
    expect(forged.contentType).toContain('application/problem+json');
    expect(forged.body).toMatchObject({ status: 401, code: 'unauthorized' });

    const tampered = await postWebhook(
      publicUrl,
      'fal',
      fal.signWebhook(body),
      body.replace('evil', 'evil2'),
    );
    expect(tampered.status).toBe(401);
    const stale = Math.floor(Date.now() / 1000) - 600;
    expect(
      (await postWebhook(publicUrl, 'fal', fal.signWebhook(body, { timestamp: stale }), body)).status,
    ).toBe(401);
    const unsigned = await postWebhook(publicUrl, 'fal', { 'content-type': 'application/json' }, body);
    expect(unsigned.status).toBe(401);
    const otherId = fal.signWebhook(body.replaceAll(job!.requestId, 'another-request'));
    expect((await postWebhook(publicUrl, 'fal', otherId, body)).status).toBe(401);

    // None of them reached the workflow: no extra poll, nothing stored, nothing charged.
    await sleep(500);
    expect(statusCalls(fal, job!.requestId)).toBe(polls);
    const still = await getGeneration(h, user, created.id);
    expect(still).toMatchObject({ status: 'running', outputs: [], credits: running.credits });

    // A genuine webhook is accepted and wakes the workflow (one more poll, still running)...
    const headers = fal.signWebhook(body);
    expect((await postWebhook(publicUrl, 'fal', headers, body)).status).toBe(200);
    await waitFor(
      async () => statusCalls(fal, job!.requestId),
      (c) => c > polls,
      5000,
    );
    expect((await getGeneration(h, user, created.id)).status).toBe('running');
    // ...but the very same bytes again are a replay.
    const replay = await postWebhook(publicUrl, 'fal', headers, body);
    expect(replay.status).toBe(401);
    expect(replay.body.code).toBe('unauthorized');

    const cancel = await h.app.inject({
      method: 'POST',
      url: `/v1/generations/${created.id}/cancel`,
      headers: user.auth,
    });
    expect(cancel.statusCode).toBe(202);
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('canceled');
    await waitFor(
      async () =>
        fal.requests.filter((r) => r.method === 'PUT' && r.path.endsWith(`/${job!.requestId}/cancel`)),
      (r) => r.length === 1,
      5000,
    );
    expect(job!.canceled).toBe(true);
    await expectRefundedOnce(h, user, created.id, 200, 50);
  });

  it('refuses an oversized body with 413 and an unknown provider with 404', async () => {
    const big = Buffer.alloc(1024 * 1024 + 1, 0x20);
    const tooLarge = await postWebhook(publicUrl, 'fal', { 'content-type': 'application/json' }, big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.contentType).toContain('application/problem+json');
    for (const name of ['nope', 'local', 'replicate', '__proto__']) {
      const res = await postWebhook(publicUrl, name, { 'content-type': 'application/json' }, '{}');
      expect(res.status, name).toBe(404);
    }
  });
});

describe('fal: generations that webhooks never reach (polling every 300 ms must finish them)', () => {
  let fal: FakeFal;
  let h: Harness;
  beforeAll(async () => {
    fal = await startFakeFal();
    ({ h } = await startListeningHarness(falEnv(fal, 300)));
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
  });

  pollingFaultCases(falTarget(() => ({ h, fal })));
});
