// Input images handed to fal and Replicate, through the real API,
// worker and Temporal: the workflow resolves each image before submit, and the fakes read what they
// were handed as a model would, answering 422 when they cannot — so a success here means the
// provider really got the image, byte for byte.
import { createHash, randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkUploadSignature } from '../../lib/auth/signed-urls';
import { findModel } from '../../lib/catalog/models';
import { withUserTx } from '../../lib/db/pool';
import { derivedUuid } from '../../lib/ledger/ids';
import { encodePng } from '../../lib/providers/local/png';
import { generationInputs, getUpload } from '../../lib/uploads/store';
import { createStorage } from '../../lib/wiring/from-config';
import { startFakeFal, type FakeFal } from '../fakes/fal-server';
import { startFakeServer } from '../fakes/http';
import { startFakeReplicate, type FakeReplicate } from '../fakes/replicate-server';
import { freePort } from '../../lib/net/free-port';
import { webhookDeps } from '../../worker/create-worker';
import { createUser, startHarness, testConfig, type Harness } from '../support/context';
import { addMember, createTeam, grantTeam } from '../support/teams';
import {
  expectChargedOnce,
  expectRefundedOnce,
  settled,
  startListeningHarness,
  submit,
  type User,
} from '../support/provider-e2e';

let n = 0;
const prompt = () => `a cat walks away ${++n} ${Date.now()}`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const KLING = findModel('kling-v2.1-master')!;
const HAILUO = findModel('hailuo-02-pro')!;
const KONTEXT = findModel('flux-pro-kontext-max')!;

/** A PNG of one colour (compresses to a few hundred bytes). */
const flatPng = (size = 16, value = 180) =>
  encodePng(size, size, new Uint8Array(size * size * 4).fill(value));
/** A PNG of random pixels (does not compress): about 4 × size² bytes. */
const noisyPng = (size: number) => encodePng(size, size, randomBytes(size * size * 4));

/** An upload of the user's, through POST /v1/uploads (the raw PNG as the body). */
async function upload(
  h: Harness,
  user: User,
  bytes: Buffer,
): Promise<{ id: string; sha256: string; fileName: string }> {
  const res = await h.app.inject({
    method: 'POST',
    url: '/v1/uploads',
    headers: { ...user.auth, 'content-type': 'image/png' },
    payload: bytes,
  });
  expect(res.statusCode, res.body).toBe(201);
  const { id, sha256 } = res.json() as { id: string; sha256: string };
  expect(sha256).toBe(sha(bytes));
  return { id, sha256, fileName: `${id}.png` };
}

const inputsOf = (h: Harness, user: User, generationId: string) =>
  withUserTx(h.db, user.userId, (tx) => generationInputs(tx, generationId));

/** A client's image host on 127.0.0.1 (WEBHOOK_ALLOW_PRIVATE_URLS is on in tests): path → PNG. */
async function imageHost(files: Record<string, Buffer>) {
  return startFakeServer((req, res: ServerResponse) => {
    const bytes = files[req.path];
    if (!bytes) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return void res.end('not found');
    }
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': bytes.length });
    res.end(bytes);
  });
}

const falEnv = (fal: FakeFal) => ({
  VELRO_PROVIDER: 'fal',
  FAL_KEY: 'test',
  FAL_QUEUE_URL: fal.url,
  FAL_JWKS_URL: fal.jwksUrl,
  FAL_STORAGE_URL: fal.url,
  PROVIDER_POLL_INITIAL_MS: '300',
  PROVIDER_HTTP_TIMEOUT_MS: '1000',
});

describe('fal: input images go through fal storage', () => {
  let fal: FakeFal;
  let h: Harness;
  let host: Awaited<ReturnType<typeof imageHost>>;
  const hosted = noisyPng(24);
  beforeAll(async () => {
    fal = await startFakeFal();
    ({ h } = await startListeningHarness(falEnv(fal)));
    host = await imageHost({ '/cat.png': hosted });
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
    await host?.close();
  });

  it('animates an upload with Kling: the image-to-video endpoint gets its own file_url, with the upload’s bytes', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(32));
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');

    const job = fal.jobFor(p)!;
    expect(job.endpoint).toBe('fal-ai/kling-video/v2.1/master/image-to-video');
    const fileUrl = job.input.image_url as string;
    expect(fileUrl.startsWith(`${fal.url}/files/storage/`)).toBe(true);
    expect(fal.storedFiles.get(fileUrl)).toMatchObject({ fileName: up.fileName, sha256: up.sha256 });
    expect(job.images.image_url).toMatchObject({ ok: true, sha256: up.sha256 });
    expect(fal.initiates(up.fileName)).toHaveLength(1);
    // What was handed over is recorded, for a retry to hand over the same.
    const [linked] = await inputsOf(h, user, created.id);
    expect(linked).toMatchObject({
      field: 'image_url',
      upload_id: up.id,
      provider: 'fal',
      provider_url: fileUrl,
    });
    expect(linked!.provider_url_expires_at!.getTime()).toBeGreaterThan(Date.now() + 6 * 86_400_000);
    await expectChargedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it('gives Hailuo both frames; a resolve retried after one upload does not upload that one again', async () => {
    const user = await createUser(h.db, 1000);
    const start = await upload(h, user, noisyPng(20));
    const end = await upload(h, user, noisyPng(20));
    // The start frame is uploaded, then the end frame's initiate fails once: the activity is retried.
    fal.uploadFaults(end.fileName, 'initiate-503');
    const p = prompt();
    const created = await submit(
      h,
      user,
      { prompt: p, image_url: `upload:${start.id}`, end_image_url: `upload:${end.id}` },
      HAILUO.id,
    );
    const done = await settled(h, user, created.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const job = fal.jobFor(p)!;
    expect(job.endpoint).toBe('fal-ai/minimax/hailuo-02/pro/image-to-video');
    expect(job.images.image_url).toMatchObject({ ok: true, sha256: start.sha256 });
    expect(job.images.end_image_url).toMatchObject({ ok: true, sha256: end.sha256 });
    expect(fal.initiates(start.fileName)).toHaveLength(1);
    expect(fal.initiates(end.fileName)).toHaveLength(2);
    expect((await inputsOf(h, user, created.id)).map((i) => [i.field, i.upload_id])).toEqual([
      ['image_url', start.id],
      ['end_image_url', end.id],
    ]);
    await expectChargedOnce(h, user, created.id, 1000, HAILUO.credits);
  });

  it('sends Kontext with an image to its edit endpoint, without one to text-to-image', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, flatPng());
    const edit = prompt();
    const text = prompt();
    const a = await submit(h, user, { prompt: edit, image_url: `upload:${up.id}` }, KONTEXT.id);
    const b = await submit(h, user, { prompt: text }, KONTEXT.id);
    expect((await settled(h, user, a.id)).status).toBe('succeeded');
    expect((await settled(h, user, b.id)).status).toBe('succeeded');
    expect(fal.jobFor(edit)!.endpoint).toBe('fal-ai/flux-pro/kontext/max');
    expect(fal.jobFor(edit)!.images.image_url).toMatchObject({ ok: true, sha256: up.sha256 });
    expect(fal.jobFor(text)!.endpoint).toBe('fal-ai/flux-pro/kontext/max/text-to-image');
    expect(fal.jobFor(text)!.input.image_url).toBeUndefined();
  });

  it('initiates again when the upload URL has expired (403 on the PUT), and succeeds', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(16));
    fal.uploadFaults(up.fileName, 'put-expired');
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    expect((await settled(h, user, created.id)).status).toBe('succeeded');
    expect(fal.initiates(up.fileName)).toHaveLength(2);
    expect(fal.jobFor(p)!.images.image_url).toMatchObject({ ok: true, sha256: up.sha256 });
    await expectChargedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it('fails a 413 from fal storage as invalid_input before submitting, without retrying, and refunds', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(16));
    fal.uploadFaults(up.fileName, 'initiate-413');
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('invalid_input');
    expect(done.error.message).toContain('413');
    expect(fal.initiates(up.fileName)).toHaveLength(1);
    expect(fal.jobFor(p)).toBeUndefined();
    await expectRefundedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it('fails the generation as invalid_input naming image_url when fal cannot download the image, and refunds', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(16));
    fal.uploadFaults(up.fileName, 'file-gone');
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('invalid_input');
    expect(done.error.message).toContain('image_url');
    expect(fal.jobFor(p)!.images.image_url).toMatchObject({ ok: false });
    await expectRefundedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it("copies a client's image URL into Velro storage first, then hands fal that copy", async () => {
    const user = await createUser(h.db, 1000);
    const p = prompt();
    const url = `${host.url}/cat.png`;
    const created = await submit(h, user, { prompt: p, image_url: url }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');

    const copyId = derivedUuid(`velro:input:${created.id}:image_url`);
    const copy = await withUserTx(h.db, user.userId, (tx) => getUpload(tx, copyId));
    expect(copy).toMatchObject({ source: 'url', source_url: url, sha256: sha(hosted), team_id: null });
    expect(copy!.used_at).not.toBeNull();
    const stored = await createStorage(h.config).get(copy!.storage_key);
    expect(stored?.bytes).toBe(hosted.length);
    expect(host.requests.filter((r) => r.path === '/cat.png')).toHaveLength(1);
    expect(fal.jobFor(p)!.images.image_url).toMatchObject({ ok: true, sha256: sha(hosted) });
    expect(fal.initiates(`${copyId}.png`)).toHaveLength(1);
    await expectChargedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it("copies a client's image URL for a team's generation as the team's upload, visible to its members", async () => {
    const owner = await createUser(h.db);
    const member = await createUser(h.db);
    const teamId = await createTeam(h.db, owner.userId);
    await addMember(h.db, teamId, owner.userId, member, 'member');
    await grantTeam(teamId, 1000);
    const p = prompt();
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: member.auth,
      payload: { model: KLING.id, teamId, input: { prompt: p, image_url: `${host.url}/cat.png` } },
    });
    expect(res.statusCode, res.body).toBe(202);
    const done = await settled(h, member, res.json().id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const copyId = derivedUuid(`velro:input:${done.id}:image_url`);
    const seenByOwner = await withUserTx(h.db, owner.userId, (tx) => getUpload(tx, copyId));
    expect(seenByOwner).toMatchObject({ team_id: teamId, user_id: member.userId, sha256: sha(hosted) });
    expect(fal.jobFor(p)!.images.image_url).toMatchObject({ ok: true, sha256: sha(hosted) });
  });

  it('fails a dead image URL (404) as invalid_input before any call to fal, and refunds', async () => {
    const user = await createUser(h.db, 1000);
    const p = prompt();
    const before = fal.requests.length;
    const created = await submit(h, user, { prompt: p, image_url: `${host.url}/gone.png` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('invalid_input');
    expect(done.error.message).toContain('image_url');
    expect(
      fal.requests.slice(before).filter((r) => r.method !== 'GET' || !r.path.startsWith('/.well-known')),
    ).toEqual([]);
    expect(await inputsOf(h, user, created.id)).toEqual([]);
    await expectRefundedOnce(h, user, created.id, 1000, KLING.credits);
  });
});

/** The asset signing key of the test API (test/support/context.ts startApi). */
const TEST_ASSET_KEY = Buffer.alloc(32, 7);

describe('fal with INPUT_IMAGE_DELIVERY=signed-url: fal fetches a signed Velro URL', () => {
  const publicUrl = 'https://velro.example';
  let fal: FakeFal;
  let h: Harness;
  let listening: string;
  beforeAll(async () => {
    // fal reaches VELRO_PUBLIC_URL; here that is the API on 127.0.0.1.
    fal = await startFakeFal({ rewriteImageUrl: (url) => url.replace(publicUrl, listening) });
    const port = await freePort();
    listening = `http://127.0.0.1:${port}`;
    const env = { ...falEnv(fal), VELRO_PUBLIC_URL: publicUrl, INPUT_IMAGE_DELIVERY: 'signed-url' };
    // The worker signs with the key the test API checks (the harness's API has a fixed one).
    h = await startHarness(env, {
      webhooks: { ...webhookDeps(testConfig(env)), assetSigningKey: async () => TEST_ASSET_KEY },
    });
    await h.app.listen({ port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
  });

  it('hands fal /v1/uploads/<id>/content signed with the asset key, and uploads nothing to fal storage', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(16));
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);

    const handed = new URL(fal.jobFor(p)!.input.image_url as string);
    expect(handed.origin).toBe(publicUrl);
    expect(handed.pathname).toBe(`/v1/uploads/${up.id}/content`);
    const expires = Number(handed.searchParams.get('expires'));
    expect(expires * 1000).toBeGreaterThan(Date.now() + KLING.deadlineSeconds * 1000);
    expect(checkUploadSignature(TEST_ASSET_KEY, up.id, expires, handed.searchParams.get('signature')!)).toBe(
      'valid',
    );
    expect(fal.initiates()).toHaveLength(0);
    // fal fetched it from the API, signed URL and all, and got the upload's bytes.
    expect(fal.jobFor(p)!.images.image_url).toMatchObject({ ok: true, sha256: up.sha256 });
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
  });
});

const replicateEnv = (fake: FakeReplicate) => ({
  VELRO_PROVIDER: 'replicate',
  REPLICATE_API_TOKEN: 'r8_test',
  REPLICATE_API_URL: fake.url,
  REPLICATE_WEBHOOK_SECRET: fake.secret,
  REPLICATE_DATA_URI_MAX_BYTES: '4096',
  PROVIDER_POLL_INITIAL_MS: '300',
  PROVIDER_HTTP_TIMEOUT_MS: '1000',
});

describe('Replicate: input images as data URIs or files', () => {
  let fake: FakeReplicate;
  let h: Harness;
  const startImage = KLING.replicate.inputNames?.image_url ?? 'image_url';
  beforeAll(async () => {
    fake = await startFakeReplicate();
    ({ h } = await startListeningHarness(replicateEnv(fake)));
  });
  afterAll(async () => {
    await h?.stop();
    await fake?.close();
  });

  it('hands a small image inline as a data URI under the model’s own input name, recording nothing', async () => {
    const user = await createUser(h.db, 1000);
    const bytes = flatPng();
    expect(bytes.length).toBeLessThanOrEqual(4096);
    const up = await upload(h, user, bytes);
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const prediction = fake.predictionFor(p)!;
    expect(prediction.model).toBe(KLING.replicate.imageModel ?? KLING.replicate.model);
    expect(prediction.input.image_url).toBeUndefined();
    expect(prediction.input[startImage]).toBe(`data:image/png;base64,${bytes.toString('base64')}`);
    expect(prediction.images[startImage]).toMatchObject({ ok: true, sha256: up.sha256 });
    expect(fake.fileCreates(up.fileName)).toHaveLength(0);
    expect((await inputsOf(h, user, created.id))[0]).toMatchObject({ upload_id: up.id, provider_url: null });
    await expectChargedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it('uploads a larger image through POST /v1/files and hands over its urls.get', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(48));
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const prediction = fake.predictionFor(p)!;
    const url = prediction.input[startImage] as string;
    expect(url).toMatch(new RegExp(`^${fake.url}/v1/files/[a-z0-9]+$`));
    expect(prediction.images[startImage]).toMatchObject({ ok: true, sha256: up.sha256 });
    expect(fake.fileCreates(up.fileName)).toHaveLength(1);
    const [linked] = await inputsOf(h, user, created.id);
    expect(linked).toMatchObject({ provider: 'replicate', provider_url: url });
    expect(linked!.provider_url_expires_at!.getTime()).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    await expectChargedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it('retries a 503 from /v1/files and succeeds', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(48));
    fake.uploadFaults(up.fileName, 'files-503');
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    expect((await settled(h, user, created.id)).status).toBe('succeeded');
    expect(fake.fileCreates(up.fileName)).toHaveLength(2);
    expect(fake.predictionFor(p)!.images[startImage]).toMatchObject({ ok: true, sha256: up.sha256 });
    await expectChargedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it('fails a 413 from /v1/files as invalid_input without creating a prediction, and refunds', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(48));
    fake.uploadFaults(up.fileName, 'files-413');
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('invalid_input');
    expect(fake.fileCreates(up.fileName)).toHaveLength(1);
    expect(fake.predictionFor(p)).toBeUndefined();
    await expectRefundedOnce(h, user, created.id, 1000, KLING.credits);
  });

  it('fails as invalid_input naming the field when Replicate cannot read the file (its 422), and refunds', async () => {
    const user = await createUser(h.db, 1000);
    const up = await upload(h, user, noisyPng(48));
    fake.uploadFaults(up.fileName, 'files-gone');
    const p = prompt();
    const created = await submit(h, user, { prompt: p, image_url: `upload:${up.id}` }, KLING.id);
    const done = await settled(h, user, created.id);
    expect(done.status).toBe('failed');
    expect(done.error.code).toBe('invalid_input');
    expect(done.error.message).toContain(`input.${startImage}`);
    await expectRefundedOnce(h, user, created.id, 1000, KLING.credits);
  });
});
