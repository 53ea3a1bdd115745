// The provider half of input images: fal's storage upload and Replicate's files/data URIs, against
// the fakes (real HTTP on 127.0.0.1), with their failure modes; and the Replicate input mapping.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findModel } from '../../lib/catalog/models';
import { FalProvider } from '../../lib/providers/fal';
import type { InputImage } from '../../lib/providers/input-image';
import { encodePng } from '../../lib/providers/local/png';
import { NonRetryableProviderError, RetryableProviderError } from '../../lib/providers/provider';
import { ReplicateProvider, replicateRequest } from '../../lib/providers/replicate';
import { startFakeFal, type FakeFal } from '../fakes/fal-server';
import { startFakeServer } from '../fakes/http';
import { startFakeReplicate, type FakeReplicate } from '../fakes/replicate-server';

/** A PNG of random pixels (it does not compress): about 4 × width × height bytes. */
function noisyPng(width: number, height: number): Buffer {
  return encodePng(width, height, randomBytes(width * height * 4));
}

const image = (bytes: Buffer): InputImage => ({
  bytes,
  contentType: 'image/png',
  fileName: `${randomUUID()}.png`,
});
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the call to fail');
}

describe('fal storage upload (initiate, then PUT to the signed upload URL)', () => {
  let fal: FakeFal;
  let provider: FalProvider;
  const at = Date.parse('2026-12-01T00:00:00Z');
  beforeAll(async () => {
    fal = await startFakeFal();
    provider = new FalProvider({
      key: 'test',
      queueUrl: fal.url,
      jwksUrl: fal.jwksUrl,
      storageUrl: fal.url,
      timeoutMs: 1000,
      nowSeconds: () => at / 1000,
    });
  });
  afterAll(() => fal?.close());

  it('initiates with the key, PUTs the bytes without it, and returns the file_url that serves them', async () => {
    const img = image(noisyPng(16, 16));
    const handed = await provider.uploadInput(img);
    const [initiate] = fal.initiates(img.fileName);
    expect(initiate!.headers.authorization).toBe('Key test');
    expect(initiate!.query.get('storage_type')).toBe('fal-cdn-v3');
    expect(JSON.parse(initiate!.body)).toEqual({ content_type: 'image/png', file_name: img.fileName });
    expect(JSON.parse(String(initiate!.headers['x-fal-object-lifecycle']))).toEqual({
      expiration_duration_seconds: 7 * 86_400,
    });
    const put = fal.requests.find((r) => r.method === 'PUT' && r.path.startsWith('/storage-bucket/'))!;
    expect(put.headers.authorization).toBeUndefined();
    expect(put.headers['content-type']).toBe('image/png');

    expect(handed.expiresAt).toEqual(new Date(at + 7 * 86_400_000));
    expect(fal.storedFiles.get(handed.url)?.sha256).toBe(sha(img.bytes));
    const served = await fetch(handed.url);
    expect(served.status).toBe(200);
    expect(sha(Buffer.from(await served.arrayBuffer()))).toBe(sha(img.bytes));
  });

  it('fails a 503 at initiate and a refused (expired) upload URL as retryable; the next try succeeds', async () => {
    const a = image(noisyPng(8, 8));
    fal.uploadFaults(a.fileName, 'initiate-503');
    const first = await rejection(provider.uploadInput(a));
    expect(first).toBeInstanceOf(RetryableProviderError);
    expect((first as RetryableProviderError).code).toBe('provider_unavailable');
    expect(fal.storedFiles.get((await provider.uploadInput(a)).url)?.sha256).toBe(sha(a.bytes));

    const b = image(noisyPng(8, 8));
    fal.uploadFaults(b.fileName, 'put-expired');
    const expired = await rejection(provider.uploadInput(b));
    expect(expired).toBeInstanceOf(RetryableProviderError);
    expect(expired.message).toContain('HTTP 403');
    expect(fal.storedFiles.get((await provider.uploadInput(b)).url)?.sha256).toBe(sha(b.bytes));
    // The retry asked for a new upload URL: the expired one is never reused.
    expect(fal.initiates(b.fileName)).toHaveLength(2);
  });

  it('fails a 413 (at initiate or PUT) as invalid_input, not retried', async () => {
    for (const fault of ['initiate-413', 'put-413']) {
      const img = image(noisyPng(8, 8));
      fal.uploadFaults(img.fileName, fault);
      const err = await rejection(provider.uploadInput(img));
      expect(err, fault).toBeInstanceOf(NonRetryableProviderError);
      expect((err as NonRetryableProviderError).code).toBe('invalid_input');
      expect(err.message).toContain('413');
    }
  });

  it('fails a refused key as provider_unauthorized', async () => {
    const wrongKey = new FalProvider({
      key: 'wrong',
      queueUrl: fal.url,
      jwksUrl: fal.jwksUrl,
      storageUrl: fal.url,
      timeoutMs: 1000,
    });
    const err = await rejection(wrongKey.uploadInput(image(noisyPng(4, 4))));
    expect(err).toBeInstanceOf(NonRetryableProviderError);
    expect((err as NonRetryableProviderError).code).toBe('provider_unauthorized');
  });

  it('gives up on a storage host that does not answer within the time limit (retryable)', async () => {
    const silent = await startFakeServer(() => new Promise<void>(() => undefined));
    try {
      const slow = new FalProvider({
        key: 'test',
        queueUrl: fal.url,
        jwksUrl: fal.jwksUrl,
        storageUrl: silent.url,
        timeoutMs: 300,
      });
      const started = Date.now();
      const err = await rejection(slow.uploadInput(image(noisyPng(4, 4))));
      expect(err).toBeInstanceOf(RetryableProviderError);
      expect((err as RetryableProviderError).code).toBe('provider_request_timeout');
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await silent.close();
    }
  });
});

describe('Replicate input files (a data URI when small, POST /v1/files when not)', () => {
  let fake: FakeReplicate;
  let provider: ReplicateProvider;
  beforeAll(async () => {
    fake = await startFakeReplicate();
    provider = new ReplicateProvider({
      token: 'r8_test',
      apiUrl: fake.url,
      timeoutMs: 1000,
      dataUriMaxBytes: 2048,
    });
  });
  afterAll(() => fake?.close());

  it('inlines an image up to dataUriMaxBytes as a data URI that does not expire', async () => {
    const small = image(encodePng(4, 4, new Uint8Array(64).fill(200)));
    expect(small.bytes.length).toBeLessThanOrEqual(2048);
    const handed = await provider.uploadInput(small);
    expect(handed).toEqual({
      url: `data:image/png;base64,${small.bytes.toString('base64')}`,
      expiresAt: null,
    });
    expect(fake.fileCreates(small.fileName)).toHaveLength(0);
  });

  it('uploads a larger one as multipart `content` and returns urls.get with its expiry', async () => {
    const large = image(noisyPng(32, 32));
    expect(large.bytes.length).toBeGreaterThan(2048);
    const handed = await provider.uploadInput(large);
    const [created] = fake.fileCreates(large.fileName);
    expect(created!.headers.authorization).toBe('Bearer r8_test');
    expect(created!.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    const file = [...fake.files.values()].find((f) => f.url === handed.url)!;
    expect(file).toMatchObject({ name: large.fileName, contentType: 'image/png', sha256: sha(large.bytes) });
    expect(handed.expiresAt!.getTime() - Date.now()).toBeGreaterThan(23 * 3_600_000);
    // The file URL is Replicate's API: its bytes are for the token's holder (and models) only.
    expect((await fetch(`${handed.url}/download`)).status).toBe(401);
    const download = await fetch(`${handed.url}/download`, { headers: { authorization: 'Bearer r8_test' } });
    expect(sha(Buffer.from(await download.arrayBuffer()))).toBe(sha(large.bytes));
  });

  it('retries a 503, and fails a 413 as invalid_input', async () => {
    const flaky = image(noisyPng(32, 32));
    fake.uploadFaults(flaky.fileName, 'files-503');
    const err = await rejection(provider.uploadInput(flaky));
    expect(err).toBeInstanceOf(RetryableProviderError);
    expect((await provider.uploadInput(flaky)).url).toMatch(/\/v1\/files\//);

    const huge = image(noisyPng(32, 32));
    fake.uploadFaults(huge.fileName, 'files-413');
    const refused = await rejection(provider.uploadInput(huge));
    expect(refused).toBeInstanceOf(NonRetryableProviderError);
    expect((refused as NonRetryableProviderError).code).toBe('invalid_input');
  });
});

describe("Replicate's model and input names for image fields (the catalog's replicate entries)", () => {
  it('renames the image fields per model and runs the image model when there is an image', () => {
    for (const model of ['kling-v2.1-master', 'flux-pro-kontext-max', 'hailuo-02-pro', 'wan-pro', 'veo3']) {
      const m = findModel(model)!;
      const names: Partial<Record<string, string>> = m.replicate.inputNames ?? {};
      const withImage = replicateRequest(m, { prompt: 'p', image_url: 'data:image/png;base64,AA==' });
      const field = names.image_url ?? 'image_url';
      expect(withImage.input, model).toEqual({ prompt: 'p', [field]: 'data:image/png;base64,AA==' });
      expect(withImage.model, model).toBe(m.replicate.imageModel ?? m.replicate.model);
      expect(replicateRequest(m, { prompt: 'p' }), model).toEqual({
        model: m.replicate.model,
        input: { prompt: 'p' },
      });
    }
    expect(replicateRequest(findModel('kling-v2.1-master')!, { prompt: 'p', image_url: 'x' }).input).toEqual({
      prompt: 'p',
      start_image: 'x',
    });
  });
});
