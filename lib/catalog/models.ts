import { z } from 'zod';

/**
 * The seven models Velro sells. Ids are stable API contract; provider endpoints are configuration
 * (fal's and Replicate's model names drift, see shared/reference/providers.md).
 */

const prompt = z.string().trim().min(1, 'prompt must not be empty').max(4000).describe('What to render');
const seed = z.number().int().min(0).max(4_294_967_295).optional().describe('Seed for reproducible output');
const negativePrompt = z.string().max(2000).optional();

/** The fields of a model input that hold an image (an upload reference or a URL). */
export type ImageField = 'image_url' | 'end_image_url';
export const IMAGE_FIELDS: readonly ImageField[] = ['image_url', 'end_image_url'];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The upload's own URL or path (`/v1/uploads/<id>` or `…/content`): the id, else undefined. */
const UPLOAD_PATH = /^\/v1\/uploads\/([0-9a-f-]{36})(?:\/content)?\/?$/i;

/** The upload id of `upload:<id>`, lower-cased, or undefined. */
export function uploadIdInRef(ref: string): string | undefined {
  const id = ref.startsWith('upload:') ? ref.slice('upload:'.length) : '';
  return UUID.test(id) ? id.toLowerCase() : undefined;
}

export function uploadIdInPath(path: string): string | undefined {
  const id = UPLOAD_PATH.exec(path)?.[1];
  return id && UUID.test(id) ? id.toLowerCase() : undefined;
}

/**
 * Why a value cannot be an image reference, or undefined. The form only: whether the scheme and
 * the host are allowed, and whether the upload exists, is checked by the API (api/services/input-refs.ts).
 */
export function imageRefProblem(value: string): string | undefined {
  if (value.startsWith('upload:')) {
    return UUID.test(value.slice('upload:'.length))
      ? undefined
      : 'an upload reference is upload:<id>, the id POST /v1/uploads answered with';
  }
  if (uploadIdInPath(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an https URL of an image or an upload reference (upload:<id>)';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return `${url.protocol.replace(/:$/, '')} URLs are not fetched: give an https URL or upload:<id>`;
  }
  return undefined;
}

const imageRef = (what: string) =>
  z
    .string()
    .max(2048)
    .superRefine((v, ctx) => {
      const problem = imageRefProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe(
      `${what}: \`upload:<id>\` (an upload of POST /v1/uploads, or its own URL) or an https URL of a PNG, JPEG or WebP image`,
    );

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
  /** The input fields that take an image; the API resolves them (api/services/input-refs.ts). */
  imageFields: readonly ImageField[];
  /** fal endpoint ids without and with an image (FAL_ENDPOINTS overrides them: fal renames endpoints). */
  fal: FalEndpoints;
  replicate: ReplicateModel;
}

export interface FalEndpoints {
  /** Used when the input has no `image_url`. */
  text?: string;
  /** Used when it has one. */
  image?: string;
}

export interface ReplicateModel {
  model: string;
  /** The model to run when the input has an image, where that is another model (Wan: i2v vs t2v). */
  imageModel?: string;
  /** Replicate's input names for Velro's image fields (and image options), where they differ. */
  inputNames?: Partial<Record<ImageField | 'image_prompt_strength', string>>;
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
  image_url: imageRef('Image prompt: the output takes after it').optional(),
  image_prompt_strength: z
    .number()
    .min(0)
    .max(1)
    .default(0.1)
    .describe('How much the image prompt weighs against the text prompt (with image_url)'),
  aspect_ratio: wideAspect.default('16:9'),
  output_format: z.enum(['jpeg', 'png']).default('png'),
  raw: z.boolean().default(false),
  safety_tolerance: z.enum(['1', '2', '3', '4', '5', '6']).default('2'),
});

const kontextInput = z.strictObject({
  prompt,
  seed,
  image_url: imageRef('The image to edit; without it Kontext renders from the prompt alone').optional(),
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

const startImage = imageRef('The first frame to animate (image-to-video); text-to-video without it');

const veo3Input = z
  .strictObject({
    prompt,
    seed,
    image_url: startImage.optional(),
    negative_prompt: negativePrompt,
    aspect_ratio: z
      .enum(['16:9', '9:16', 'auto'])
      .default('16:9')
      .describe("`auto` (the input image's own ratio) only with image_url"),
    duration: z.enum(['4s', '6s', '8s']).default('8s'),
    resolution: z.enum(['720p', '1080p']).default('720p'),
    generate_audio: z.boolean().default(true),
  })
  .superRefine((i, ctx) => {
    if (i.aspect_ratio === 'auto' && i.image_url === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['aspect_ratio'],
        message: 'auto takes the ratio of the input image: give image_url, or 16:9 or 9:16',
      });
    }
  });

const hailuoInput = z
  .strictObject({
    prompt,
    seed,
    image_url: startImage.optional(),
    end_image_url: imageRef('The last frame the video ends on (only together with image_url)').optional(),
    prompt_optimizer: z.boolean().default(true),
  })
  .superRefine((i, ctx) => {
    if (i.end_image_url !== undefined && i.image_url === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['end_image_url'],
        message: 'an end image needs a start image: give image_url too',
      });
    }
  });

const klingInput = z.strictObject({
  prompt,
  seed,
  image_url: startImage.optional(),
  negative_prompt: negativePrompt,
  duration: z.enum(['5', '10']).default('5'),
  aspect_ratio: z.enum(['16:9', '9:16', '1:1']).default('16:9'),
  cfg_scale: z.number().min(0).max(1).default(0.5),
});

const wanInput = z.strictObject({
  prompt,
  seed,
  image_url: startImage.optional(),
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
    imageFields: ['image_url'],
    // One endpoint for both: with image_url the image is an image prompt (FLUX Redux).
    fal: { text: 'fal-ai/flux-pro/v1.1-ultra', image: 'fal-ai/flux-pro/v1.1-ultra' },
    replicate: {
      model: 'black-forest-labs/flux-1.1-pro-ultra',
      inputNames: { image_url: 'image_prompt', image_prompt_strength: 'image_prompt_strength' },
    },
  },
  {
    id: 'flux-pro-kontext-max',
    name: 'FLUX.1 Kontext [max]',
    kind: 'image',
    credits: 60,
    deadlineSeconds: 300,
    input: kontextInput,
    localOutput: (i) => sizeForAspect(str(i.aspect_ratio, '1:1'), 1024),
    imageFields: ['image_url'],
    fal: { text: 'fal-ai/flux-pro/kontext/max/text-to-image', image: 'fal-ai/flux-pro/kontext/max' },
    replicate: { model: 'black-forest-labs/flux-kontext-max', inputNames: { image_url: 'input_image' } },
  },
  {
    id: 'imagen4-ultra',
    name: 'Imagen 4 Ultra',
    kind: 'image',
    credits: 45,
    deadlineSeconds: 300,
    input: imagenInput,
    localOutput: (i) => sizeForAspect(str(i.aspect_ratio, '1:1'), i.resolution === '2K' ? 2048 : 1024),
    imageFields: [],
    fal: { text: 'fal-ai/imagen4/preview/ultra' },
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
      // `auto` follows the input image, which the catalog does not see: nominally 16:9.
      ...sizeForAspect(
        i.aspect_ratio === 'auto' ? '16:9' : str(i.aspect_ratio, '16:9'),
        i.resolution === '1080p' ? 1920 : 1280,
      ),
      durationSeconds: Number.parseInt(str(i.duration, '8s'), 10),
    }),
    imageFields: ['image_url'],
    fal: { text: 'fal-ai/veo3', image: 'fal-ai/veo3/image-to-video' },
    // `image` is on Replicate's google/veo-3.1 page; assumed the same for veo-3 (unverified).
    replicate: { model: 'google/veo-3', inputNames: { image_url: 'image' } },
  },
  {
    id: 'hailuo-02-pro',
    name: 'MiniMax Hailuo-02 Pro',
    kind: 'video',
    credits: 400,
    deadlineSeconds: 900,
    input: hailuoInput,
    localOutput: () => ({ ...sizeForAspect('16:9', 1920), durationSeconds: 6 }),
    imageFields: ['image_url', 'end_image_url'],
    fal: {
      text: 'fal-ai/minimax/hailuo-02/pro/text-to-video',
      image: 'fal-ai/minimax/hailuo-02/pro/image-to-video',
    },
    replicate: {
      model: 'minimax/hailuo-02',
      inputNames: { image_url: 'first_frame_image', end_image_url: 'last_frame_image' },
    },
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
    imageFields: ['image_url'],
    fal: {
      text: 'fal-ai/kling-video/v2.1/master/text-to-video',
      image: 'fal-ai/kling-video/v2.1/master/image-to-video',
    },
    // `start_image` is what Replicate's other Kling models (v1.6, v2.1, v2.5) take; unverified for master.
    replicate: { model: 'kwaivgi/kling-v2.1-master', inputNames: { image_url: 'start_image' } },
  },
  {
    id: 'wan-pro',
    name: 'Wan Pro',
    kind: 'video',
    credits: 300,
    deadlineSeconds: 900,
    input: wanInput,
    localOutput: () => ({ ...sizeForAspect('16:9', 1920), durationSeconds: 5 }),
    imageFields: ['image_url'],
    fal: { text: 'fal-ai/wan-pro/text-to-video', image: 'fal-ai/wan-pro/image-to-video' },
    // Image-to-video is another model on Replicate; `image` as on wan-2.2-i2v (unverified for 2.1).
    replicate: {
      model: 'wan-video/wan-2.1-t2v-720p',
      imageModel: 'wan-video/wan-2.1-i2v-720p',
      inputNames: { image_url: 'image' },
    },
  },
] as const;

const byId = new Map(MODELS.map((m) => [m.id, m]));

export function findModel(id: string): ModelDefinition | undefined {
  return byId.get(id);
}

export const MODEL_IDS = MODELS.map((m) => m.id) as [string, ...string[]];
