import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODELS, type ModelDefinition } from '../../lib/catalog/models';
import { decodeImage } from '../../lib/providers/local/decode';
import { createUser, startHarness, submitGeneration, waitFor, type Harness } from '../support/context';
import { BLUE, GREEN, pngImage, jpegImage, RED, webpImage, type Rgb } from '../support/images';
import { decodeGif } from '../support/media-decoders';
import { addMember, createTeam, grantTeam } from '../support/teams';

// Input images through the whole offline pipeline: upload, API, workflow (which links the upload and
// hands the local renderer a storage reference), the renderer, and the generation's view.

/** Short outputs where a model has options for it. */
const FAST: Record<string, Record<string, unknown>> = {
  veo3: { duration: '4s' },
  'kling-v2.1-master': { duration: '5' },
};

const WITH_IMAGES = MODELS.filter((m) => m.imageFields.length > 0);

describe('input images through the local renderer', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '200' });
  });
  afterAll(() => h?.stop());

  async function upload(auth: Record<string, string>, bytes: Buffer, type: string, teamId?: string) {
    const res = await h.app.inject({
      method: 'POST',
      url: `/v1/uploads${teamId ? `?teamId=${teamId}` : ''}`,
      headers: { ...auth, 'content-type': type },
      payload: bytes,
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; width: number; height: number; contentType: string };
  }

  async function finished(auth: Record<string, string>, id: string) {
    return waitFor(
      async () => (await h.app.inject({ url: `/v1/generations/${id}`, headers: auth })).json(),
      (g) => g.status !== 'queued' && g.status !== 'running',
      90_000,
    );
  }

  /** The output's bytes, fetched through its signed URL as a client would. */
  async function outputBytes(gen: { outputs: { url: string }[] }): Promise<Buffer> {
    const url = new URL(gen.outputs[0]!.url);
    const res = await h.app.inject({ url: url.pathname + url.search });
    expect(res.statusCode).toBe(200);
    return res.rawPayload;
  }

  /** The centre pixel's colour of the output (a PNG, or a GIF's `frame`). */
  function centreOf(model: ModelDefinition, bytes: Buffer, frame: 'first' | 'last' = 'first'): number[] {
    if (model.kind === 'image') {
      const png = decodeImage(bytes, { maxPixels: 50_000_000 });
      const i = (Math.floor(png.height / 2) * png.width + Math.floor(png.width / 2)) * 4;
      return [...png.rgba.subarray(i, i + 3)];
    }
    const gif = decodeGif(bytes);
    const f = frame === 'first' ? gif.frames[0]! : gif.frames.at(-1)!;
    const index = f.pixels[Math.floor(gif.height / 2) * gif.width + Math.floor(gif.width / 2)]!;
    return [...gif.palette.subarray(index * 3, index * 3 + 3)];
  }

  const near = (a: number[], b: Rgb) => a.every((v, c) => Math.abs(v - b[c]!) <= 45);

  it(
    'runs every model that takes an image with one and without, the output starting from the input',
    { timeout: 180_000 },
    async () => {
      const cost = WITH_IMAGES.reduce((sum, m) => sum + 2 * m.credits, 0);
      const user = await createUser(h.db, cost);
      const red = await upload(user.auth, pngImage(64, 48, RED), 'image/png');
      const blue = await upload(user.auth, jpegImage(40, 40, BLUE), 'image/jpeg');
      const runs = await Promise.all(
        WITH_IMAGES.flatMap((model) => {
          const images: Record<string, string> = { image_url: `upload:${red.id}` };
          if (model.imageFields.includes('end_image_url')) images.end_image_url = `upload:${blue.id}`;
          return [images, {}].map(async (imgs) => ({
            model,
            images: imgs,
            id: await submitGeneration(h.app, user.auth, {
              model: model.id,
              input: { prompt: `a test of ${model.name}`, ...FAST[model.id], ...imgs },
            }),
          }));
        }),
      );
      for (const run of runs) {
        const gen = await finished(user.auth, run.id);
        const label = `${run.model.id} ${Object.keys(run.images).join('+') || 'without image'}`;
        expect(gen.status, `${label}: ${JSON.stringify(gen.error)}`).toBe('succeeded');
        expect(gen.outputs).toHaveLength(1);
        const bytes = await outputBytes(gen);
        if (Object.keys(run.images).length === 0) {
          expect(gen.inputs, label).toEqual([]);
          continue;
        }
        const expectedInputs = [
          { field: 'image_url', uploadId: red.id, contentType: 'image/png', width: 64, height: 48 },
        ];
        if (run.images.end_image_url) {
          expectedInputs.push({
            field: 'end_image_url',
            uploadId: blue.id,
            contentType: 'image/jpeg',
            width: 40,
            height: 40,
          });
        }
        expect(gen.inputs, label).toEqual(expectedInputs);
        expect(near(centreOf(run.model, bytes), RED), `${label}: centre ${centreOf(run.model, bytes)}`).toBe(
          true,
        );
        if (run.images.end_image_url) {
          expect(near(centreOf(run.model, bytes, 'last'), BLUE), `${label} ends on its end image`).toBe(true);
        }
      }
      const credits = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
      expect(credits).toMatchObject({ available: 0, reserved: 0, spent: cost });
    },
  );

  it('shows a team generation’s inputs to the team’s members, and the generation to no one else', async () => {
    const owner = await createUser(h.db);
    const member = await createUser(h.db);
    const outsider = await createUser(h.db, 100);
    const teamId = await createTeam(h.db, owner.userId, 'inputs');
    await addMember(h.db, teamId, owner.userId, member, 'viewer');
    await grantTeam(teamId, 100);
    const green = await upload(owner.auth, pngImage(32, 32, GREEN), 'image/png', teamId);
    const id = await submitGeneration(h.app, owner.auth, {
      model: 'flux-pro-kontext-max',
      teamId,
      input: { prompt: 'make it autumn', image_url: `upload:${green.id}` },
    });
    const gen = await finished(owner.auth, id);
    expect(gen.status, JSON.stringify(gen.error)).toBe('succeeded');
    const inputs = [
      { field: 'image_url', uploadId: green.id, contentType: 'image/png', width: 32, height: 32 },
    ];
    expect(gen.inputs).toEqual(inputs);
    expect(
      near(
        centreOf(
          MODELS.find((m) => m.id === 'flux-pro-kontext-max')!,
          await outputBytes(gen),
        ),
        GREEN,
      ),
    ).toBe(true);

    const seen = await h.app.inject({ url: `/v1/generations/${id}`, headers: member.auth });
    expect(seen.statusCode).toBe(200);
    expect(seen.json().inputs).toEqual(inputs);
    const listed = await h.app.inject({ url: `/v1/generations?teamId=${teamId}`, headers: member.auth });
    expect(listed.json().data[0]).toMatchObject({ id, inputs });

    const hidden = await h.app.inject({ url: `/v1/generations/${id}`, headers: outsider.auth });
    expect(hidden.statusCode).toBe(404);
    expect(hidden.body).not.toContain(green.id);
  });

  it('fails a WebP input on the local renderer with invalid_input, and refunds it', async () => {
    const user = await createUser(h.db, 60);
    const webp = await upload(user.auth, webpImage(16, 16, RED), 'image/webp');
    const id = await submitGeneration(h.app, user.auth, {
      model: 'flux-pro-kontext-max',
      input: { prompt: 'edit this', image_url: `upload:${webp.id}` },
    });
    const gen = await finished(user.auth, id);
    expect(gen).toMatchObject({
      status: 'failed',
      credits: { state: 'refunded' },
      error: { code: 'invalid_input', message: expect.stringMatching(/image_url: .*WebP/) },
      outputs: [],
      inputs: [{ field: 'image_url', uploadId: webp.id, contentType: 'image/webp', width: 16, height: 16 }],
    });
    const credits = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    expect(credits).toEqual({ available: 60, reserved: 0, spent: 0 });
  });
});
