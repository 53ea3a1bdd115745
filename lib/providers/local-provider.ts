import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { InputImageError, inputFormatOf } from './local/decode';
import { RenderPool } from './local/render-pool';
import { STORAGE_REF_PREFIX } from './local/storage-input';
import {
  NonRetryableProviderError,
  type OutputSource,
  type Provider,
  type ProviderJob,
  type ProviderStatus,
  type SubmitRequest,
} from './provider';

export interface LocalProviderOptions {
  latencyMs: number;
  failureRate: number;
  now?: () => number;
  /** Reads an input image reference (`storage:<key>`); without it, an input image fails the job. */
  readInput?: (ref: string) => Promise<Buffer>;
  /** Input images with more pixels are refused (UPLOAD_MAX_PIXELS). */
  maxInputPixels?: number;
}

type LocalSource = Extract<OutputSource, { kind: 'local' }>;

/** The image fields the renderer starts from; a video also cross-fades to its end image. */
const IMAGE_FIELDS = ['image_url'] as const;
const VIDEO_FIELDS = ['image_url', 'end_image_url'] as const;

// Shared by every LocalProvider in the process: renders are CPU-bound, threads are the limit.
const renders = new RenderPool();

/** A number in [0, 1) fixed by the text: the same generation always gets the same fate. */
function unitHash(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * The built-in provider: really renders the output from the prompt, after a configurable latency
 * and with a configurable failure rate. It keeps no state: the request id carries the submit time,
 * so a worker that crashes and restarts sees the same job in the same stage.
 * Input images arrive as `storage:<key>` references (the workflow copies uploads and URLs into storage);
 * the output starts from them. Other values (an old workflow's plain URL) are not fetched: the output
 * is then rendered from the prompt alone, as before input images existed. PNG and JPEG only: a WebP
 * input fails the job with invalid_input at submit, as a provider refusing its input would.
 */
export class LocalProvider implements Provider {
  readonly name = 'local' as const;
  private readonly now: () => number;

  constructor(private readonly opts: LocalProviderOptions) {
    this.now = opts.now ?? Date.now;
  }

  async submit(req: SubmitRequest): Promise<{ requestId: string }> {
    for (const { field, ref } of inputRefs(req)) {
      const format = inputFormatOf(await this.read(field, ref));
      if (format === 'webp') {
        throw new NonRetryableProviderError(
          'invalid_input',
          `${field}: the local renderer cannot decode WebP images; use a PNG or JPEG (fal and Replicate take WebP)`,
        );
      }
      if (!format) throw new NonRetryableProviderError('invalid_input', `${field}: not a PNG or JPEG image`);
    }
    return { requestId: `local-${req.generationId}-${this.now()}` };
  }

  async status(job: ProviderJob): Promise<ProviderStatus> {
    const elapsed = this.now() - submittedAt(job.requestId);
    const { latencyMs } = this.opts;
    if (elapsed < latencyMs * 0.25) {
      return {
        state: 'queued',
        queuePosition: Math.max(1, Math.ceil((latencyMs * 0.25 - elapsed) / 250)),
        logs: [],
      };
    }
    if (elapsed < latencyMs) {
      const percent = Math.floor((elapsed / Math.max(1, latencyMs)) * 100);
      return { state: 'running', logs: [`rendering ${job.model.id}: ${percent}%`] };
    }
    if (unitHash(`fail:${job.generationId}`) < this.opts.failureRate) {
      return {
        state: 'failed',
        logs: ['render failed'],
        error: {
          code: 'provider_error',
          message: 'The local renderer failed (LOCAL_PROVIDER_FAILURE_RATE).',
        },
      };
    }
    return { state: 'succeeded', logs: ['render complete'] };
  }

  async result(job: ProviderJob): Promise<OutputSource[]> {
    const size = job.model.localOutput(job.input);
    const seed = job.input.seed ?? Math.floor(unitHash(`seed:${job.generationId}`) * 2 ** 32);
    const images = inputRefs(job);
    return [
      {
        kind: 'local',
        media: job.model.kind === 'video' ? 'animation' : 'image',
        prompt: job.input.prompt,
        seed,
        width: size.width,
        height: size.height,
        durationSeconds: size.durationSeconds,
        ...(images.length > 0 ? { images } : {}),
      },
    ];
  }

  async cancel(_job: ProviderJob): Promise<void> {
    // Nothing runs anywhere: a canceled local job simply is never stored.
  }

  async openLocal(source: LocalSource) {
    const inputs = new Map<string, Buffer>();
    for (const { field, ref } of source.images ?? []) inputs.set(field, await this.read(field, ref));
    const req = {
      prompt: source.prompt,
      seed: source.seed,
      width: source.width,
      height: source.height,
      image: inputs.get('image_url'),
      maxInputPixels: this.opts.maxInputPixels,
    };
    try {
      const media =
        source.media === 'animation'
          ? await renders.renderAnimation({
              ...req,
              durationSeconds: source.durationSeconds ?? 5,
              endImage: inputs.get('end_image_url'),
            })
          : await renders.renderImage(req);
      return { body: Readable.from([media.bytes]), contentType: media.contentType };
    } catch (err) {
      if (err instanceof InputImageError) throw new NonRetryableProviderError('invalid_input', err.message);
      throw err;
    }
  }

  private async read(field: string, ref: string): Promise<Buffer> {
    if (!this.opts.readInput) {
      throw new NonRetryableProviderError(
        'configuration_error',
        `${field}: this local provider reads no inputs`,
      );
    }
    return this.opts.readInput(ref);
  }
}

/** The job's input images the renderer uses, in a fixed order. */
function inputRefs(job: Pick<ProviderJob, 'model' | 'input'>): { field: string; ref: string }[] {
  const fields = job.model.kind === 'video' ? VIDEO_FIELDS : IMAGE_FIELDS;
  return fields.flatMap((field) => {
    const ref = job.input[field];
    return typeof ref === 'string' && ref.startsWith(STORAGE_REF_PREFIX) ? [{ field, ref }] : [];
  });
}

function submittedAt(requestId: string): number {
  const ms = Number(requestId.slice(requestId.lastIndexOf('-') + 1));
  if (!Number.isFinite(ms)) throw new Error(`not a local request id: ${requestId}`);
  return ms;
}
