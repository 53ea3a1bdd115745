import { z } from 'zod';

/**
 * The seven models Velro sells. Ids are stable API contract; provider endpoints are configuration
 * (fal's and Replicate's model names drift, see shared/reference/providers.md).
 */

const prompt = z.string().trim().min(1, 'prompt must not be empty').max(4000).describe('What to render');
const seed = z.number().int().min(0).max(4_294_967_295).optional().describe('Seed for reproducible output');
const imageUrl = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  .describe('Source image (http or https URL)');
const negativePrompt = z.string().max(2000).optional();

const wideAspect = z.enum(['21:9', '16:9', '4:3', '3:2', '1:1', '2:3', '3:4', '9:16', '9:21']);

export type MediaKind = 'image' | 'video';

export interface ModelDefinition {
  id: string;
  name: string;
  kind: MediaKind;
  credits: number;
  /** How long the provider may take before Velro cancels it and refunds. */
  deadlineSeconds: number;
  input: z.ZodType<ModelInput>;
  /** Output size the local renderer produces for an input (the real models' nominal sizes, scaled). */
  localOutput(input: ModelInput): { width: number; height: number; durationSeconds?: number };
  fal: { endpoint: string; endpointWithoutImage?: string };
  replicate: { model: string };
}

export type ModelInput = { prompt: string; seed?: number } & Record<string, unknown>;

/** Width and height for an "W:H" ratio with the longer side `long`, rounded to multiples of 16. */
export function sizeForAspect(aspect: string, long: number): { width: number; height: number } {
  const [w, h] = aspect.split(':').map(Number) as [number, number];
  const round16 = (n: number) => Math.max(16, Math.round(n / 16) * 16);
  return w >= h
    ? { width: long, height: round16((long * h) / w) }
    : { width: round16((long * w) / h), height: long };
}

const fluxUltraInput = z.strictObject({
  prompt,
  seed,
  aspect_ratio: wideAspect.default('16:9'),
  output_format: z.enum(['jpeg', 'png']).default('png'),
  raw: z.boolean().default(false),
  safety_tolerance: z.enum(['1', '2', '3', '4', '5', '6']).default('2'),
});

const kontextInput = z.strictObject({
  prompt,
  seed,
  image_url: imageUrl.optional(),
  aspect_ratio: wideAspect.default('1:1'),
  guidance_scale: z.number().min(1).max(20).default(3.5),
  output_format: z.enum(['jpeg', 'png']).default('png'),
  safety_tolerance: z.enum(['1', '2', '3', '4', '5', '6']).default('2'),
});

const imagenInput = z.strictObject({
  prompt,
  seed,
  negative_prompt: negativePrompt,
  aspect_ratio: z.enum(['1:1', '16:9', '9:16', '4:3', '3:4']).default('1:1'),
  resolution: z.enum(['1K', '2K']).default('1K'),
});

const veo3Input = z.strictObject({
  prompt,
  seed,
  negative_prompt: negativePrompt,
  aspect_ratio: z.enum(['16:9', '9:16']).default('16:9'),
  duration: z.enum(['4s', '6s', '8s']).default('8s'),
  resolution: z.enum(['720p', '1080p']).default('720p'),
  generate_audio: z.boolean().default(true),
});

const hailuoInput = z.strictObject({
  prompt,
  seed,
  prompt_optimizer: z.boolean().default(true),
});

const klingInput = z.strictObject({
  prompt,
  seed,
  negative_prompt: negativePrompt,
  duration: z.enum(['5', '10']).default('5'),
  aspect_ratio: z.enum(['16:9', '9:16', '1:1']).default('16:9'),
  cfg_scale: z.number().min(0).max(1).default(0.5),
});

const wanInput = z.strictObject({
  prompt,
  seed,
  enable_safety_checker: z.boolean().default(true),
});

const str = (v: unknown, fallback: string) => (typeof v === 'string' ? v : fallback);

export const MODELS: readonly ModelDefinition[] = [
  {
    id: 'flux-pro-v1.1-ultra',
    name: 'FLUX1.1 [pro] ultra',
    kind: 'image',
    credits: 50,
    deadlineSeconds: 300,
    input: fluxUltraInput,
    localOutput: (i) => sizeForAspect(str(i.aspect_ratio, '16:9'), 1024),
    fal: { endpoint: 'fal-ai/flux-pro/v1.1-ultra' },
    replicate: { model: 'black-forest-labs/flux-1.1-pro-ultra' },
  },
  {
    id: 'flux-pro-kontext-max',
    name: 'FLUX.1 Kontext [max]',
    kind: 'image',
    credits: 60,
    deadlineSeconds: 300,
    input: kontextInput,
    localOutput: (i) => sizeForAspect(str(i.aspect_ratio, '1:1'), 1024),
    fal: {
      endpoint: 'fal-ai/flux-pro/kontext/max',
      endpointWithoutImage: 'fal-ai/flux-pro/kontext/max/text-to-image',
    },
    replicate: { model: 'black-forest-labs/flux-kontext-max' },
  },
  {
    id: 'imagen4-ultra',
    name: 'Imagen 4 Ultra',
    kind: 'image',
    credits: 45,
    deadlineSeconds: 300,
    input: imagenInput,
    localOutput: (i) => sizeForAspect(str(i.aspect_ratio, '1:1'), i.resolution === '2K' ? 2048 : 1024),
    fal: { endpoint: 'fal-ai/imagen4/preview/ultra' },
    replicate: { model: 'google/imagen-4-ultra' },
  },
  {
    id: 'veo3',
    name: 'Veo 3',
    kind: 'video',
    credits: 500,
    deadlineSeconds: 900,
    input: veo3Input,
    localOutput: (i) => ({
      ...sizeForAspect(str(i.aspect_ratio, '16:9'), i.resolution === '1080p' ? 1920 : 1280),
      durationSeconds: Number.parseInt(str(i.duration, '8s'), 10),
    }),
    fal: { endpoint: 'fal-ai/veo3' },
    replicate: { model: 'google/veo-3' },
  },
  {
    id: 'hailuo-02-pro',
    name: 'MiniMax Hailuo-02 Pro',
    kind: 'video',
    credits: 400,
    deadlineSeconds: 900,
    input: hailuoInput,
    localOutput: () => ({ ...sizeForAspect('16:9', 1920), durationSeconds: 6 }),
    fal: { endpoint: 'fal-ai/minimax/hailuo-02/pro/text-to-video' },
    replicate: { model: 'minimax/hailuo-02' },
  },
  {
    id: 'kling-v2.1-master',
    name: 'Kling 2.1 Master',
    kind: 'video',
    credits: 350,
    deadlineSeconds: 900,
    input: klingInput,
    localOutput: (i) => ({
      ...sizeForAspect(str(i.aspect_ratio, '16:9'), 1920),
      durationSeconds: Number(str(i.duration, '5')),
    }),
    fal: { endpoint: 'fal-ai/kling-video/v2.1/master/text-to-video' },
    replicate: { model: 'kwaivgi/kling-v2.1-master' },
  },
  {
    id: 'wan-pro',
    name: 'Wan Pro',
    kind: 'video',
    credits: 300,
    deadlineSeconds: 900,
    input: wanInput,
    localOutput: () => ({ ...sizeForAspect('16:9', 1920), durationSeconds: 5 }),
    fal: { endpoint: 'fal-ai/wan-pro/text-to-video' },
    replicate: { model: 'wan-video/wan-2.1-t2v-720p' },
  },
] as const;

const byId = new Map(MODELS.map((m) => [m.id, m]));

export function findModel(id: string): ModelDefinition | undefined {
  return byId.get(id);
}

export const MODEL_IDS = MODELS.map((m) => m.id) as [string, ...string[]];
