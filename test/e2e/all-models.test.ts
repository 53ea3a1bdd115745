import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODELS } from '../../lib/catalog/models';
import { createUser, startHarness, waitFor, type Harness } from '../support/context';

/** Inputs that exercise each model's size and duration options; image_url-free (text to image/video). */
const INPUTS: Record<string, Record<string, unknown>> = {
  'flux-pro-v1.1-ultra': { aspect_ratio: '21:9' },
  'flux-pro-kontext-max': { aspect_ratio: '3:4' },
  'imagen4-ultra': { aspect_ratio: '9:16' },
  veo3: { aspect_ratio: '9:16', duration: '4s' },
  'hailuo-02-pro': {},
  'kling-v2.1-master': { aspect_ratio: '1:1', duration: '5' },
  'wan-pro': {},
};

describe('with no provider key, every model renders a real output locally', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '200' });
  });
  afterAll(() => h?.stop());

  it(
    'succeeds for all seven models with the sizes, kinds and durations they promise',
    { timeout: 120_000 },
    async () => {
      const user = await createUser(
        h.db,
        MODELS.reduce((sum, m) => sum + m.credits, 0),
      );
      const submitted = await Promise.all(
        MODELS.map(async (model) => {
          const res = await h.app.inject({
            method: 'POST',
            url: '/v1/generations',
            headers: user.auth,
            payload: { model: model.id, input: { prompt: `a test of ${model.name}`, ...INPUTS[model.id] } },
          });
          expect(res.statusCode, res.body).toBe(202);
          return { model, id: res.json().id as string };
        }),
      );
      for (const { model, id } of submitted) {
        const gen = await waitFor(
          async () => (await h.app.inject({ url: `/v1/generations/${id}`, headers: user.auth })).json(),
          (g) => g.status !== 'queued' && g.status !== 'running',
          60_000,
        );
        expect(gen.status, `${model.id}: ${JSON.stringify(gen.error)}`).toBe('succeeded');
        const output = gen.outputs[0];
        const expected = model.localOutput(model.input.parse({ prompt: 'x', ...INPUTS[model.id] }));
        if (model.kind === 'image') {
          expect(output).toMatchObject({
            contentType: 'image/png',
            width: expected.width,
            height: expected.height,
          });
        } else {
          expect(output.contentType).toBe('image/gif');
          expect(output.durationMs).toBe(expected.durationSeconds! * 1000);
          // Animations are scaled down to 320 px on the long side, keeping the aspect ratio.
          expect(Math.max(output.width, output.height)).toBe(320);
          expect(output.width / output.height).toBeCloseTo(expected.width / expected.height, 1);
        }
        const url = new URL(output.url);
        const file = await h.app.inject({ url: url.pathname + url.search });
        expect(file.statusCode).toBe(200);
        expect(file.rawPayload.length).toBe(output.bytes);
      }
      const credits = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
      expect(credits).toEqual({
        available: 0,
        reserved: 0,
        spent: MODELS.reduce((sum, m) => sum + m.credits, 0),
      });
    },
  );
});
