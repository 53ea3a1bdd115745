import type { FalEndpointOverrides } from '../catalog/fal-endpoints';
import type { ModelDefinition, ModelInput } from '../catalog/models';
import { detailFailure, detailText, falFailure } from './fal-errors';
import { FAL_INPUT_LIFETIME_SECONDS, uploadToFalStorage } from './fal-storage';
import { FalWebhookVerifier } from './fal-webhooks';
import { excerpt, providerFetch, transientFailure, type ProviderResponse } from './http';
import type { InputImage, ProviderInputUrl } from './input-image';
import {
  NonRetryableProviderError,
  RetryableProviderError,
  type OutputSource,
  type Provider,
  type ProviderFailure,
  type ProviderJob,
  type ProviderStatus,
  type SubmitRequest,
  type WebhookRequest,
  type WebhookVerdict,
} from './provider';

export { FAL_WEBHOOK_TOLERANCE_S } from './fal-webhooks';

export interface FalProviderOptions {
  key: string;
  /** Queue host, e.g. https://queue.fal.run (a fake in tests). */
  queueUrl: string;
  /** Public keys that sign fal's webhooks. */
  jwksUrl: string;
  /** fal's REST host for input uploads (FAL_STORAGE_URL); https://rest.fal.ai by default. */
  storageUrl?: string;
  /** How long fal keeps an uploaded input (7 days by default). */
  inputLifetimeSeconds?: number;
  /** Where fal should send completion webhooks; none are asked for without it. */
  webhookUrl?: string;
  /** Time limit of every HTTP request to fal. */
  timeoutMs: number;
  /** How long fetched webhook keys are trusted (fal allows caching up to 24 h). */
  jwksTtlMs?: number;
  /** Seconds since the epoch (tests pin it). */
  nowSeconds?: () => number;
  /** FAL_ENDPOINTS: endpoint ids that replace the catalog's, per model. */
  endpoints?: FalEndpointOverrides;
}

/** What fal's queue hands back on submit: the id and the URLs to follow for this request. */
interface FalRequestRef {
  request_id: string;
  status_url: string;
  response_url: string;
  cancel_url: string;
}

// Namespaced endpoint ids carry one more leading segment (fal-js parseEndpointId).
const NAMESPACES = new Set(['workflows', 'comfy']);

/**
 * The endpoint a job is submitted to: the model's image endpoint (edit, image-to-video, image
 * prompt) when the input has an `image_url`, its text endpoint otherwise; FAL_ENDPOINTS overrides
 * either.
 */
export function falEndpointFor(
  model: ModelDefinition,
  input: ModelInput,
  overrides?: FalEndpointOverrides,
): string {
  const endpoints = { ...model.fal, ...overrides?.[model.id] };
  const endpoint = input.image_url ? endpoints.image : endpoints.text;
  if (!endpoint) {
    throw new NonRetryableProviderError(
      'invalid_input',
      `${model.id} has no fal endpoint ${input.image_url ? 'with' : 'without'} an image`,
    );
  }
  return endpoint;
}

/** `owner/alias` (or `namespace/owner/alias`): status, result and cancel drop the endpoint's subpath. */
export function falAppId(endpoint: string): string {
  const parts = endpoint.split('/').filter(Boolean);
  return parts.slice(0, NAMESPACES.has(parts[0] ?? '') ? 3 : 2).join('/');
}

/**
 * fal.ai queue API (shared/reference/providers.md §1). The request id the workflow stores is the JSON
 * of fal's request id and the status, response and cancel URLs fal returned, so a worker that
 * restarts follows the same URLs; an id without them (or with URLs off the queue host) falls back to
 * the documented layout.
 */
export class FalProvider implements Provider {
  readonly name = 'fal' as const;
  private readonly queueUrl: string;
  private readonly queueOrigin: string;
  private readonly webhooks: FalWebhookVerifier;

  constructor(private readonly opts: FalProviderOptions) {
    this.queueUrl = opts.queueUrl.replace(/\/+$/, '');
    this.queueOrigin = new URL(this.queueUrl).origin;
    this.webhooks = new FalWebhookVerifier({
      jwksUrl: opts.jwksUrl,
      jwksTtlMs: opts.jwksTtlMs,
      timeoutMs: opts.timeoutMs,
      nowSeconds: opts.nowSeconds ?? (() => Math.floor(Date.now() / 1000)),
    });
  }

  async submit(req: SubmitRequest): Promise<{ requestId: string }> {
    const endpoint = falEndpointFor(req.model, req.input, this.opts.endpoints);
    const url = new URL(`${this.queueUrl}/${endpoint}`);
    if (this.opts.webhookUrl) url.searchParams.set('fal_webhook', this.opts.webhookUrl);
    const res = await this.call('submit', url.toString(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // The model input itself, not wrapped in {input: …}.
      body: JSON.stringify(req.input),
    });
    if (res.status < 200 || res.status >= 300) throw this.requestError('submit', res);
    const body = (isObject(res.json) ? res.json : {}) as Partial<FalRequestRef>;
    // A garbled body still leaves the id in x-fal-request-id: keep the job rather than submit again.
    const requestId =
      typeof body.request_id === 'string' && body.request_id
        ? body.request_id
        : res.headers.get('x-fal-request-id');
    if (!requestId) {
      throw new RetryableProviderError(
        'provider_bad_response',
        `fal submit: no request_id in the answer: ${excerpt(res)}`,
      );
    }
    return { requestId: JSON.stringify(this.refFor(endpoint, requestId, body)) };
  }

  async status(job: ProviderJob): Promise<ProviderStatus> {
    const ref = this.ref(job);
    const url = new URL(ref.status_url);
    url.searchParams.set('logs', '1');
    const res = await this.call('status', url.toString(), { method: 'GET' });
    if (res.status === 404) {
      return failed([], { code: 'provider_error', message: `fal does not know request ${ref.request_id}` });
    }
    if (res.status < 200 || res.status >= 300) throw this.requestError('status', res);
    const body = this.jsonObject('status', res);
    const logs = logLines(body.logs);
    switch (body.status) {
      case 'IN_QUEUE':
        return {
          state: 'queued',
          queuePosition: typeof body.queue_position === 'number' ? body.queue_position : undefined,
          logs,
        };
      case 'IN_PROGRESS':
        return { state: 'running', logs };
      case 'COMPLETED': {
        // fal has no FAILED status: a failure is a COMPLETED whose result (or `error`) says so.
        const outcome = await this.fetchResult(ref);
        if (!outcome.ok) return failed(logs, outcome.error);
        if (typeof body.error === 'string' && body.error) {
          return failed(logs, falFailure(body.error_type, body.error));
        }
        return { state: 'succeeded', logs };
      }
      default:
        throw new RetryableProviderError(
          'provider_bad_response',
          `fal status: unknown status ${JSON.stringify(body.status)}`,
        );
    }
  }

  async result(job: ProviderJob): Promise<OutputSource[]> {
    const outcome = await this.fetchResult(this.ref(job));
    if (!outcome.ok) throw new NonRetryableProviderError(outcome.error.code, outcome.error.message);
    return falOutputs(outcome.output);
  }

  async cancel(job: ProviderJob): Promise<void> {
    // Best effort, one try: 202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED and 404 are all fine,
    // and a failure here must not hold up the refund that follows.
    await this.call('cancel', this.ref(job).cancel_url, { method: 'PUT' }).catch(() => undefined);
  }

  verifyWebhook(req: WebhookRequest): Promise<WebhookVerdict> {
    return this.webhooks.verify(req);
  }

  /** Puts an input image on fal's storage: its `file_url` is what the model is given. */
  uploadInput(image: InputImage): Promise<ProviderInputUrl> {
    return uploadToFalStorage(
      {
        key: this.opts.key,
        storageUrl: this.opts.storageUrl ?? 'https://rest.fal.ai',
        timeoutMs: this.opts.timeoutMs,
        lifetimeSeconds: this.opts.inputLifetimeSeconds ?? FAL_INPUT_LIFETIME_SECONDS,
        now: this.opts.nowSeconds ? () => this.opts.nowSeconds!() * 1000 : undefined,
      },
      image,
    );
  }

  /** GET the result of a COMPLETED request: the output, or why the request failed. */
  private async fetchResult(
    ref: FalRequestRef,
  ): Promise<{ ok: true; output: Record<string, unknown> } | { ok: false; error: ProviderFailure }> {
    const res = await this.call('result', ref.response_url, { method: 'GET' });
    if (res.status >= 200 && res.status < 300) return { ok: true, output: this.jsonObject('result', res) };
    if (res.status === 401 || res.status === 403) throw this.requestError('result', res);
    if (res.status === 422) return { ok: false, error: detailFailure(res) };
    const body = isObject(res.json) ? res.json : undefined;
    if (res.status === 429 || res.status === 408 || res.status >= 500) {
      // An answer from fal itself (JSON detail or error_type, fal headers) is the request's own
      // failure and will not change; anything else (an nginx page, no body) is the way there failing.
      const fromFal =
        (body && ('detail' in body || 'error_type' in body)) ||
        res.headers.has('x-fal-error-type') ||
        res.headers.has('x-fal-request-id');
      if (res.status === 429 || !fromFal) throw transientFailure('fal', 'result', res)!;
      const type = res.headers.get('x-fal-error-type') ?? body?.error_type;
      return { ok: false, error: falFailure(type, detailText(body?.detail) ?? excerpt(res)) };
    }
    return { ok: false, error: detailFailure(res) };
  }

  private call(action: string, url: string, init: RequestInit): Promise<ProviderResponse> {
    return providerFetch(`fal ${action}:`, url, {
      ...init,
      headers: { authorization: `Key ${this.opts.key}`, accept: 'application/json', ...init.headers },
      timeoutMs: this.opts.timeoutMs,
    });
  }

  private jsonObject(action: string, res: ProviderResponse): Record<string, unknown> {
    if (!isObject(res.json)) {
      throw new RetryableProviderError(
        'provider_bad_response',
        `fal ${action}: the answer is not a JSON object: ${excerpt(res)}`,
      );
    }
    return res.json;
  }

  /** The error for a non-2xx answer to submit/status: retry transient ones, fail the rest at once. */
  private requestError(action: string, res: ProviderResponse): Error {
    const transient = transientFailure('fal', action, res);
    if (transient) return transient;
    if (res.status === 401 || res.status === 403) {
      return new NonRetryableProviderError(
        'provider_unauthorized',
        `fal ${action}: the API key was refused (HTTP ${res.status}); check FAL_KEY`,
      );
    }
    const failure = detailFailure(res);
    return new NonRetryableProviderError(failure.code, failure.message);
  }

  private refFor(endpoint: string, requestId: string, body: Partial<FalRequestRef>): FalRequestRef {
    const base = `${this.queueUrl}/${falAppId(endpoint)}/requests/${encodeURIComponent(requestId)}`;
    // Only URLs on the queue's own origin are followed: the API key goes with every request.
    const pick = (given: unknown, derived: string) =>
      typeof given === 'string' && sameOrigin(given, this.queueOrigin) ? given : derived;
    return {
      request_id: requestId,
      status_url: pick(body.status_url, `${base}/status`),
      response_url: pick(body.response_url, base),
      cancel_url: pick(body.cancel_url, `${base}/cancel`),
    };
  }

  private ref(job: ProviderJob): FalRequestRef {
    const endpoint = falEndpointFor(job.model, job.input, this.opts.endpoints);
    if (job.requestId.startsWith('{')) {
      try {
        const stored = JSON.parse(job.requestId) as Partial<FalRequestRef>;
        if (typeof stored.request_id === 'string') return this.refFor(endpoint, stored.request_id, stored);
      } catch {
        // Not ours: treated as a bare id below.
      }
    }
    return this.refFor(endpoint, job.requestId, {});
  }
}

function sameOrigin(url: string, origin: string): boolean {
  try {
    return new URL(url).origin === origin;
  } catch {
    return false;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function failed(logs: string[], error: ProviderFailure): ProviderStatus {
  return { state: 'failed', logs, error };
}

/** The latest log message: fal returns the whole log on every poll and the workflow appends each answer. */
function logLines(logs: unknown): string[] {
  if (!Array.isArray(logs)) return [];
  return logs
    .map((l) => (isObject(l) && typeof l.message === 'string' ? l.message : undefined))
    .filter((m): m is string => !!m)
    .slice(-1);
}

/** The output files of a fal result: `images[]` for image models, `video` for video models. */
export function falOutputs(output: Record<string, unknown>): OutputSource[] {
  const files: unknown[] = [];
  if (Array.isArray(output.images)) files.push(...output.images);
  if (output.image) files.push(output.image);
  if (Array.isArray(output.videos)) files.push(...output.videos);
  if (output.video) files.push(output.video);
  return files.flatMap((f) => {
    if (!isObject(f) || typeof f.url !== 'string') return [];
    return [
      {
        kind: 'url' as const,
        url: f.url,
        ...(typeof f.content_type === 'string' ? { contentType: f.content_type } : {}),
      },
    ];
  });
}
