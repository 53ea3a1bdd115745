import { describe, expect, it } from 'vitest';
import { toModelView } from '../../api/schemas/models';
import { parseFalEndpoints, type FalEndpointOverrides } from '../../lib/catalog/fal-endpoints';
import { findModel, MODEL_IDS, MODELS, sizeForAspect } from '../../lib/catalog/models';
import { ConfigError, loadConfig } from '../../lib/config';
import { falEndpointFor } from '../../lib/providers/fal';

describe('the model catalog', () => {
  it('has the seven models of the contract with their credit costs', () => {
    expect(Object.fromEntries(MODELS.map((m) => [m.id, [m.kind, m.credits]]))).toEqual({
      'flux-pro-v1.1-ultra': ['image', 50],
      'flux-pro-kontext-max': ['image', 60],
      'imagen4-ultra': ['image', 45],
      veo3: ['video', 500],
      'hailuo-02-pro': ['video', 400],
      'kling-v2.1-master': ['video', 350],
      'wan-pro': ['video', 300],
    });
  });

  it('validates input per model, applying defaults and naming bad fields', () => {
    const kling = findModel('kling-v2.1-master')!;
    expect(kling.input.parse({ prompt: 'a cat' })).toMatchObject({ duration: '5', aspect_ratio: '16:9' });
    const bad = kling.input.safeParse({ prompt: 'a cat', duration: '7' });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.path).toEqual(['duration']);
    expect(findModel('veo3')!.input.safeParse({ prompt: '' }).success).toBe(false);
    expect(findModel('imagen4-ultra')!.input.safeParse({ prompt: 'x', unknown_field: 1 }).success).toBe(
      false,
    );
    expect(
      findModel('flux-pro-kontext-max')!.input.safeParse({ prompt: 'x', image_url: 'ftp://a/b' }).success,
    ).toBe(false);
  });

  it("sizes local renders after the model's aspect ratio and duration", () => {
    expect(sizeForAspect('16:9', 1024)).toEqual({ width: 1024, height: 576 });
    expect(sizeForAspect('9:16', 1024)).toEqual({ width: 576, height: 1024 });
    const veo = findModel('veo3')!;
    expect(veo.localOutput(veo.input.parse({ prompt: 'x', duration: '4s', aspect_ratio: '9:16' }))).toEqual({
      width: 720,
      height: 1280,
      durationSeconds: 4,
    });
  });
});

describe('image inputs in the catalog', () => {
  const UPLOAD = 'upload:3f6c2a1e-8d4b-4f7a-9c2e-5b1d0e7f9a21';

  it('states the image fields of every model that takes one; imagen4-ultra takes none', () => {
    expect(Object.fromEntries(MODELS.map((m) => [m.id, m.imageFields]))).toEqual({
      'flux-pro-v1.1-ultra': ['image_url'],
      'flux-pro-kontext-max': ['image_url'],
      'imagen4-ultra': [],
      veo3: ['image_url'],
      'hailuo-02-pro': ['image_url', 'end_image_url'],
      'kling-v2.1-master': ['image_url'],
      'wan-pro': ['image_url'],
    });
    const imagen = findModel('imagen4-ultra')!.input.safeParse({ prompt: 'x', image_url: UPLOAD });
    expect(imagen.error!.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['image_url'] });
  });

  it('takes an upload reference or an http(s) URL in an image field, and names what is wrong', () => {
    const kling = findModel('kling-v2.1-master')!.input;
    for (const ok of [
      UPLOAD,
      'https://images.example.com/cat.png',
      'http://localhost:3000/v1/uploads/3f6c2a1e-8d4b-4f7a-9c2e-5b1d0e7f9a21/content',
      '/v1/uploads/3f6c2a1e-8d4b-4f7a-9c2e-5b1d0e7f9a21',
    ]) {
      expect(kling.safeParse({ prompt: 'x', image_url: ok }).success, ok).toBe(true);
    }
    const problem = (image_url: string) => kling.safeParse({ prompt: 'x', image_url }).error?.issues[0];
    expect(problem('upload:not-an-id')).toMatchObject({
      path: ['image_url'],
      message: 'an upload reference is upload:<id>, the id POST /v1/uploads answered with',
    });
    expect(problem('file:///etc/passwd')!.message).toMatch(/^file URLs are not fetched/);
    expect(problem('cat.png')!.message).toMatch(/https URL of an image or an upload reference/);
    expect(problem(`https://a.example/${'x'.repeat(2048)}`)!.path).toEqual(['image_url']);
  });

  it('keeps the per-model rules: Veo 3 auto ratio and Hailuo end image only with an image', () => {
    const veo = findModel('veo3')!.input;
    expect(veo.safeParse({ prompt: 'x', aspect_ratio: 'auto' }).error!.issues[0]!.path).toEqual([
      'aspect_ratio',
    ]);
    expect(veo.parse({ prompt: 'x', aspect_ratio: 'auto', image_url: UPLOAD })).toMatchObject({
      aspect_ratio: 'auto',
    });
    const veoModel = findModel('veo3')!;
    expect(veoModel.localOutput(veo.parse({ prompt: 'x', aspect_ratio: 'auto', image_url: UPLOAD }))).toEqual(
      {
        width: 1280,
        height: 720,
        durationSeconds: 8,
      },
    );
    const hailuo = findModel('hailuo-02-pro')!.input;
    expect(hailuo.safeParse({ prompt: 'x', end_image_url: UPLOAD }).error!.issues[0]).toMatchObject({
      path: ['end_image_url'],
      message: 'an end image needs a start image: give image_url too',
    });
    expect(hailuo.safeParse({ prompt: 'x', image_url: UPLOAD, end_image_url: UPLOAD }).success).toBe(true);
    const ultra = findModel('flux-pro-v1.1-ultra')!.input;
    expect(ultra.parse({ prompt: 'x', image_url: UPLOAD })).toMatchObject({ image_prompt_strength: 0.1 });
    expect(ultra.safeParse({ prompt: 'x', image_prompt_strength: 1.5 }).error!.issues[0]!.path).toEqual([
      'image_prompt_strength',
    ]);
    // The video models still render from text alone.
    for (const id of ['veo3', 'hailuo-02-pro', 'kling-v2.1-master', 'wan-pro']) {
      expect(findModel(id)!.input.safeParse({ prompt: 'x' }).success, id).toBe(true);
    }
  });

  it('picks the fal endpoint by whether an image is given, FAL_ENDPOINTS overriding it', () => {
    const endpoint = (id: string, input: Record<string, unknown>, overrides?: FalEndpointOverrides) =>
      falEndpointFor(findModel(id)!, { prompt: 'x', ...input }, overrides);
    expect(Object.fromEntries(MODELS.map((m) => [m.id, [endpoint(m.id, {}), m.fal.image ?? null]]))).toEqual({
      'flux-pro-v1.1-ultra': ['fal-ai/flux-pro/v1.1-ultra', 'fal-ai/flux-pro/v1.1-ultra'],
      'flux-pro-kontext-max': ['fal-ai/flux-pro/kontext/max/text-to-image', 'fal-ai/flux-pro/kontext/max'],
      'imagen4-ultra': ['fal-ai/imagen4/preview/ultra', null],
      veo3: ['fal-ai/veo3', 'fal-ai/veo3/image-to-video'],
      'hailuo-02-pro': [
        'fal-ai/minimax/hailuo-02/pro/text-to-video',
        'fal-ai/minimax/hailuo-02/pro/image-to-video',
      ],
      'kling-v2.1-master': [
        'fal-ai/kling-video/v2.1/master/text-to-video',
        'fal-ai/kling-video/v2.1/master/image-to-video',
      ],
      'wan-pro': ['fal-ai/wan-pro/text-to-video', 'fal-ai/wan-pro/image-to-video'],
    });
    expect(endpoint('kling-v2.1-master', { image_url: UPLOAD })).toBe(
      'fal-ai/kling-video/v2.1/master/image-to-video',
    );
    const overrides = parseFalEndpoints(
      '{"veo3": {"text": "fal-ai/veo3.1", "image": "fal-ai/veo3.1/image-to-video"}}',
    );
    expect(endpoint('veo3', {}, overrides)).toBe('fal-ai/veo3.1');
    expect(endpoint('veo3', { image_url: UPLOAD }, overrides)).toBe('fal-ai/veo3.1/image-to-video');
    // A key left out keeps the catalog's.
    expect(endpoint('wan-pro', {}, parseFalEndpoints('{"wan-pro": {"image": "fal-ai/wan/v2.2/i2v"}}'))).toBe(
      'fal-ai/wan-pro/text-to-video',
    );
  });

  it('refuses a FAL_ENDPOINTS it cannot use, at config load, naming the problem', () => {
    expect(() => parseFalEndpoints('{"veo4": {"text": "fal-ai/veo4"}}')).toThrow(/unknown model id veo4/);
    expect(() => parseFalEndpoints('{"veo3": {"txt": "fal-ai/veo3"}}')).toThrow(/veo3/);
    expect(() => parseFalEndpoints('{"veo3": {"text": "not an id"}}')).toThrow(/fal endpoint id/);
    expect(() => parseFalEndpoints('{"imagen4-ultra": {"image": "fal-ai/x/y"}}')).toThrow(/takes no image/);
    expect(() => parseFalEndpoints('{veo3')).toThrow(/not JSON/);
    expect(parseFalEndpoints(undefined)).toEqual({});
    expect(() => loadConfig({ FAL_ENDPOINTS: '{"veo4": {}}' })).toThrow(
      new ConfigError(
        `Invalid configuration:\n  FAL_ENDPOINTS: unknown model id veo4 (known: ${MODEL_IDS.join(', ')})`,
      ),
    );
  });

  it("names Replicate's model and input names for images (Wan runs another model with one)", () => {
    const replicate = Object.fromEntries(MODELS.map((m) => [m.id, m.replicate]));
    expect(replicate['wan-pro']).toEqual({
      model: 'wan-video/wan-2.1-t2v-720p',
      imageModel: 'wan-video/wan-2.1-i2v-720p',
      inputNames: { image_url: 'image' },
    });
    expect(replicate['hailuo-02-pro']!.inputNames).toEqual({
      image_url: 'first_frame_image',
      end_image_url: 'last_frame_image',
    });
    expect(replicate['kling-v2.1-master']!.inputNames).toEqual({ image_url: 'start_image' });
    expect(replicate['flux-pro-kontext-max']!.inputNames).toEqual({ image_url: 'input_image' });
    expect(replicate['flux-pro-v1.1-ultra']!.inputNames!.image_url).toBe('image_prompt');
    expect(replicate.veo3!.inputNames).toEqual({ image_url: 'image' });
    // Every model with an image field says what Replicate calls it.
    for (const m of MODELS) {
      for (const field of m.imageFields)
        expect(m.replicate.inputNames?.[field], `${m.id} ${field}`).toBeTruthy();
    }
  });

  it('shows clients which fields take images, and the fields in the input schema', () => {
    const views = Object.fromEntries(MODELS.map((m) => [m.id, toModelView(m)]));
    expect(views['hailuo-02-pro']!.imageFields).toEqual([
      { field: 'image_url', required: false },
      { field: 'end_image_url', required: false },
    ]);
    expect(views['imagen4-ultra']!.imageFields).toEqual([]);
    const props = views['kling-v2.1-master']!.inputSchema.properties as Record<
      string,
      { description: string }
    >;
    expect(props.image_url!.description).toMatch(/upload:<id>/);
    const veoRatio = (views.veo3!.inputSchema.properties as Record<string, { enum: string[] }>).aspect_ratio!;
    expect(veoRatio.enum).toEqual(['16:9', '9:16', 'auto']);
  });
});
