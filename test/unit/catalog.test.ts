import { describe, expect, it } from 'vitest';
import { findModel, MODELS, sizeForAspect } from '../../lib/catalog/models';

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
