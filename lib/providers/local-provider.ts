import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { RenderPool } from './local/render-pool';
import type { OutputSource, Provider, ProviderJob, ProviderStatus, SubmitRequest } from './provider';

export interface LocalProviderOptions {
  latencyMs: number;
  failureRate: number;
  now?: () => number;
}

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
 */
export class LocalProvider implements Provider {
  readonly name = 'local' as const;
  private readonly now: () => number;

  constructor(private readonly opts: LocalProviderOptions) {
    this.now = opts.now ?? Date.now;
  }

  async submit(req: SubmitRequest): Promise<{ requestId: string }> {
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
    return [
      {
        kind: 'local',
        media: job.model.kind === 'video' ? 'animation' : 'image',
        prompt: job.input.prompt,
        seed,
        width: size.width,
        height: size.height,
        durationSeconds: size.durationSeconds,
      },
    ];
  }

  async cancel(_job: ProviderJob): Promise<void> {
    // Nothing runs anywhere: a canceled local job simply is never stored.
  }

  async openLocal(source: Extract<OutputSource, { kind: 'local' }>) {
    const req = { prompt: source.prompt, seed: source.seed, width: source.width, height: source.height };
    const media =
      source.media === 'animation'
        ? await renders.renderAnimation({ ...req, durationSeconds: source.durationSeconds ?? 5 })
        : await renders.renderImage(req);
    return { body: Readable.from([media.bytes]), contentType: media.contentType };
  }
}

function submittedAt(requestId: string): number {
  const ms = Number(requestId.slice(requestId.lastIndexOf('-') + 1));
  if (!Number.isFinite(ms)) throw new Error(`not a local request id: ${requestId}`);
  return ms;
}
