import { generateKeyPairSync } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { providerCall } from '../../activities/provider';
import { findModel } from '../../lib/catalog/models';
import { ConfigError, loadConfig } from '../../lib/config';
import { falAppId, falOutputs, FalProvider } from '../../lib/providers/fal';
import { MAX_RETRY_AFTER_MS, retryAfterMs } from '../../lib/providers/http';
import {
  NonRetryableProviderError,
  providerRequestKey,
  RetryableProviderError,
} from '../../lib/providers/provider';
import { outputUrls, ReplicateProvider } from '../../lib/providers/replicate';
import { signStandardWebhook, verifyStandardWebhook } from '../../lib/webhooks/signing';
import { createProviders, createStorage } from '../../lib/wiring/from-config';
import { startFakeFal, type FakeFal } from '../fakes/fal-server';
import { startFakeReplicate } from '../fakes/replicate-server';
import { sendJson, sendText, startFakeServer } from '../fakes/http';

const model = findModel('flux-pro-v1.1-ultra')!;

describe('Standard Webhooks (Replicate) signatures', () => {
  // The test vector of standard-webhooks' own test suite (shared/reference/providers.md §5).
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
  const ts = 1614265330;
  const body = Buffer.from('{"test": 2432232314}');
  const sig = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
  const headers = (s = sig, t = ts) => ({
    'webhook-id': id,
    'webhook-timestamp': String(t),
    'webhook-signature': s,
  });

  it('signs and verifies the reference test vector', () => {
    expect(signStandardWebhook(secret, id, ts, body)).toBe(sig);
    expect(verifyStandardWebhook(secret, headers(), body, ts)).toEqual({
      ok: true,
      id,
      timestamp: String(ts),
    });
  });

  it('accepts any matching v1 entry among several and ignores other versions', () => {
    expect(verifyStandardWebhook(secret, headers(`v1,Zm9v ${sig}`), body, ts).ok).toBe(true);
    expect(verifyStandardWebhook(secret, headers(sig.replace('v1,', 'v1a,')), body, ts).ok).toBe(false);
  });

  it('refuses a timestamp more than 5 minutes off, either way', () => {
    expect(verifyStandardWebhook(secret, headers(), body, ts + 300).ok).toBe(true);
    expect(verifyStandardWebhook(secret, headers(), body, ts + 301).ok).toBe(false);
    expect(verifyStandardWebhook(secret, headers(), body, ts - 301).ok).toBe(false);
  });

  it('refuses another secret, another body, and missing headers', () => {
    expect(
      verifyStandardWebhook('whsec_' + Buffer.alloc(24, 1).toString('base64'), headers(), body, ts).ok,
    ).toBe(false);
    expect(verifyStandardWebhook(secret, headers(), Buffer.from('{"test": 2432232315}'), ts).ok).toBe(false);
    expect(verifyStandardWebhook(secret, { 'webhook-id': id }, body, ts).ok).toBe(false);
  });

  it('names the prediction and the delivery (webhook-id and timestamp) when verified', async () => {
    const provider = new ReplicateProvider({
      token: 't',
      apiUrl: 'http://127.0.0.1:1',
      webhookSecret: secret,
      timeoutMs: 100,
    });
    const payload = Buffer.from(JSON.stringify({ id: 'pred123', status: 'succeeded' }));
    const h = {
      'webhook-id': id,
      'webhook-timestamp': String(ts),
      'webhook-signature': signStandardWebhook(secret, id, ts, payload),
    };
    expect(await provider.verifyWebhook({ headers: h, rawBody: payload, now: ts })).toEqual({
      ok: true,
      requestKey: 'pred123',
      replayKey: `${id}.${ts}`,
    });
    const unconfigured = new ReplicateProvider({ token: 't', apiUrl: 'http://127.0.0.1:1', timeoutMs: 100 });
    expect((await unconfigured.verifyWebhook({ headers: h, rawBody: payload, now: ts })).ok).toBe(false);
  });
});

describe('fal webhook signatures (Ed25519 over the JWKS)', () => {
  let fal: FakeFal;
  beforeAll(async () => {
    fal = await startFakeFal();
  });
  afterAll(() => fal?.close());

  const provider = () =>
    new FalProvider({ key: 'test', queueUrl: fal.url, jwksUrl: fal.jwksUrl, timeoutMs: 1000 });
  const body = JSON.stringify({ request_id: 'req-1', status: 'OK', payload: {} });

  it('verifies a signed delivery and fetches the keys once', async () => {
    const p = provider();
    const before = fal.requests.filter((r) => r.path === '/.well-known/jwks.json').length;
    for (let i = 0; i < 3; i++) {
      const verdict = await p.verifyWebhook({ headers: fal.signWebhook(body), rawBody: Buffer.from(body) });
      expect(verdict).toMatchObject({ ok: true, requestKey: 'req-1' });
    }
    expect(fal.requests.filter((r) => r.path === '/.well-known/jwks.json').length - before).toBe(1);
  });

  it('refuses a stale or future timestamp, another key, another body and a request id that differs', async () => {
    const p = provider();
    const now = Math.floor(Date.now() / 1000);
    const raw = Buffer.from(body);
    const check = (headers: Record<string, string>, rawBody = raw) => p.verifyWebhook({ headers, rawBody });
    expect((await check(fal.signWebhook(body, { timestamp: now - 301 }))).ok).toBe(false);
    expect((await check(fal.signWebhook(body, { timestamp: now + 301 }))).ok).toBe(false);
    expect((await check(fal.signWebhook(body, { timestamp: now - 299 }))).ok).toBe(true);
    const other = generateKeyPairSync('ed25519').privateKey;
    expect((await check(fal.signWebhook(body, { privateKey: other }))).ok).toBe(false);
    expect((await check(fal.signWebhook(body), Buffer.from(body.replace('OK', 'ERROR')))).ok).toBe(false);
    expect((await check(fal.signWebhook(body, { requestId: 'req-2' }))).ok).toBe(false);
  });
});

describe('fal adapter edge cases', () => {
  it('keeps a job whose submit answer is garbled, by x-fal-request-id, with URLs derived at owner/alias', async () => {
    const server = await startFakeServer((_req, res) =>
      sendText(res, 200, '{"status":"IN_QU', {
        'x-fal-request-id': 'abc-123',
        'content-type': 'application/json',
      }),
    );
    try {
      const p = new FalProvider({
        key: 'k',
        queueUrl: server.url,
        jwksUrl: `${server.url}/jwks`,
        timeoutMs: 1000,
      });
      const { requestId } = await p.submit({ generationId: 'g', model, input: { prompt: 'x' } });
      expect(providerRequestKey(requestId)).toBe('abc-123');
      expect(JSON.parse(requestId)).toEqual({
        request_id: 'abc-123',
        status_url: `${server.url}/fal-ai/flux-pro/requests/abc-123/status`,
        response_url: `${server.url}/fal-ai/flux-pro/requests/abc-123`,
        cancel_url: `${server.url}/fal-ai/flux-pro/requests/abc-123/cancel`,
      });
    } finally {
      await server.close();
    }
  });

  it('never follows returned URLs off the queue host (the API key would go with them)', async () => {
    const server = await startFakeServer((_req, res) =>
      sendJson(res, 200, {
        status: 'IN_QUEUE',
        request_id: 'r1',
        status_url: 'https://evil.example/steal/status',
        response_url: 'https://evil.example/steal',
        cancel_url: 'https://evil.example/steal/cancel',
      }),
    );
    try {
      const p = new FalProvider({
        key: 'k',
        queueUrl: server.url,
        jwksUrl: `${server.url}/jwks`,
        timeoutMs: 1000,
      });
      const ref = JSON.parse(
        (await p.submit({ generationId: 'g', model, input: { prompt: 'x' } })).requestId,
      );
      expect(Object.values(ref).join(' ')).not.toContain('evil');
    } finally {
      await server.close();
    }
  });

  it('maps 401 to a non-retryable error and a long Retry-After to a bounded retryable one', async () => {
    let status = 401;
    const server = await startFakeServer((_req, res) =>
      sendJson(res, status, { detail: 'no' }, status === 429 ? { 'retry-after': '600' } : {}),
    );
    try {
      const p = new FalProvider({
        key: 'k',
        queueUrl: server.url,
        jwksUrl: `${server.url}/jwks`,
        timeoutMs: 1000,
      });
      const job = { generationId: 'g', model, input: { prompt: 'x' } };
      await expect(p.submit(job)).rejects.toMatchObject({
        name: 'NonRetryableProviderError',
        code: 'provider_unauthorized',
      });
      status = 429;
      await expect(p.submit(job)).rejects.toMatchObject({
        name: 'RetryableProviderError',
        code: 'provider_rate_limited',
        retryAfterMs: MAX_RETRY_AFTER_MS,
      });
    } finally {
      await server.close();
    }
  });

  it('finds output files in image and video results', () => {
    expect(
      falOutputs({ images: [{ url: 'https://v3.fal.media/a.png', content_type: 'image/png' }] }),
    ).toEqual([{ kind: 'url', url: 'https://v3.fal.media/a.png', contentType: 'image/png' }]);
    expect(falOutputs({ video: { url: 'https://v3.fal.media/v.mp4' } })).toEqual([
      { kind: 'url', url: 'https://v3.fal.media/v.mp4' },
    ]);
    expect(falOutputs({ detail: 'nothing' })).toEqual([]);
  });

  it('drops the endpoint subpath for status, result and cancel', () => {
    expect(falAppId('fal-ai/flux-pro/v1.1-ultra')).toBe('fal-ai/flux-pro');
    expect(falAppId('fal-ai/veo3')).toBe('fal-ai/veo3');
    expect(falAppId('workflows/me/my-flow/run')).toBe('workflows/me/my-flow');
  });
});

describe('Replicate adapter against its fake', () => {
  it('sends Prefer: wait=N when asked, and reads the prediction it gets back', async () => {
    const fake = await startFakeReplicate({ startMs: 20, runMs: 50 });
    try {
      const p = new ReplicateProvider({
        token: 'r8_test',
        apiUrl: fake.url,
        timeoutMs: 5000,
        preferWaitSeconds: 2,
      });
      const job = { generationId: 'g', model, input: { prompt: 'held' } };
      const { requestId } = await p.submit(job);
      const create = fake.requests.find((r) => r.method === 'POST')!;
      expect(create.headers.prefer).toBe('wait=2');
      expect(JSON.parse(create.body)).toEqual({ input: { prompt: 'held' } });
      expect(await p.status({ ...job, requestId })).toMatchObject({ state: 'succeeded' });
      const [output] = await p.result({ ...job, requestId });
      expect(output).toEqual({ kind: 'url', url: fake.predictionFor('held')!.outputs[0]!.url });
    } finally {
      await fake.close();
    }
  });
});

describe('provider helpers', () => {
  it('reads Retry-After as seconds or an HTTP date, or a body hint, bounded to 60 s', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('2', undefined, now)).toBe(2000);
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', undefined, now)).toBe(5000);
    expect(retryAfterMs(null, 3, now)).toBe(3000);
    expect(retryAfterMs('3600', undefined, now)).toBe(MAX_RETRY_AFTER_MS);
    expect(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', undefined, now)).toBe(0);
    expect(retryAfterMs('soon', undefined, now)).toBeUndefined();
    expect(retryAfterMs(undefined, undefined, now)).toBeUndefined();
  });

  it('turns provider errors into Temporal failures: Retry-After becomes the next retry delay', async () => {
    const retryable = await providerCall(() => {
      throw new RetryableProviderError('provider_rate_limited', 'slow down', 2000);
    }).catch((e: unknown) => e);
    expect(retryable).toBeInstanceOf(ApplicationFailure);
    expect(retryable).toMatchObject({
      type: 'provider_rate_limited',
      nonRetryable: false,
      nextRetryDelay: 2000,
    });
    const fatal = await providerCall(() => {
      throw new NonRetryableProviderError('content_policy', 'flagged');
    }).catch((e: unknown) => e);
    expect(fatal).toMatchObject({ type: 'content_policy', nonRetryable: true });
  });

  it('keys stored request ids: the fal JSON by its request_id, anything else as is', () => {
    expect(providerRequestKey(JSON.stringify({ request_id: 'r1', status_url: 'x' }))).toBe('r1');
    expect(providerRequestKey('pred-123')).toBe('pred-123');
    expect(providerRequestKey('{not json')).toBe('{not json');
  });

  it('finds Replicate output URLs in a string, an array or an object', () => {
    expect(outputUrls('https://replicate.delivery/a.png')).toEqual(['https://replicate.delivery/a.png']);
    expect(outputUrls(['https://r/1.png', 'https://r/2.png'])).toEqual([
      'https://r/1.png',
      'https://r/2.png',
    ]);
    expect(outputUrls({ video: 'https://r/v.mp4', note: 'text' })).toEqual(['https://r/v.mp4']);
    expect(outputUrls(null)).toEqual([]);
  });
});

describe('provider configuration', () => {
  it('allows the fal and Replicate output hosts by default, or the configured ones', () => {
    expect(loadConfig({}).PROVIDER_OUTPUT_HOSTS).toEqual([
      '.fal.media',
      'fal.media',
      '.fal.run',
      'replicate.delivery',
      '.replicate.delivery',
    ]);
    expect(
      loadConfig({ PROVIDER_OUTPUT_HOSTS: '*.Example.com, cdn.example.org' }).PROVIDER_OUTPUT_HOSTS,
    ).toEqual(['.example.com', 'cdn.example.org']);
    expect(() => loadConfig({ PROVIDER_OUTPUT_HOSTS: 'https://x.example' })).toThrow(/PROVIDER_OUTPUT_HOSTS/);
    expect(() => loadConfig({ PROVIDER_OUTPUT_HOSTS: '*' })).toThrow(/PROVIDER_OUTPUT_HOSTS/);
  });

  it('checks the Replicate secret and refuses a forced provider without its key', () => {
    expect(() => loadConfig({ REPLICATE_WEBHOOK_SECRET: 'secret' })).toThrow(/REPLICATE_WEBHOOK_SECRET/);
    expect(
      loadConfig({ REPLICATE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' })
        .REPLICATE_WEBHOOK_SECRET,
    ).toBe('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');
    expect(() => loadConfig({ VELRO_PROVIDER: 'fal' })).toThrow(ConfigError);
    expect(() => loadConfig({ VELRO_PROVIDER: 'replicate' })).toThrow(/REPLICATE_API_TOKEN/);
  });

  it('builds fal with FAL_KEY and Replicate with REPLICATE_API_TOKEN, local always', () => {
    const storage = createStorage(loadConfig({}));
    expect(createProviders(loadConfig({}), storage)).toMatchObject({ fal: undefined, replicate: undefined });
    const both = createProviders(loadConfig({ FAL_KEY: 'k', REPLICATE_API_TOKEN: 'r8' }), storage);
    expect(both.local?.name).toBe('local');
    expect(both.fal).toBeInstanceOf(FalProvider);
    expect(both.replicate).toBeInstanceOf(ReplicateProvider);
  });
});
