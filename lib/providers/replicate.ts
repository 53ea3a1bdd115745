import type { ModelDefinition, ModelInput } from '../catalog/models';
import { verifyStandardWebhook } from '../webhooks/signing';
import { excerpt, providerFetch, transientFailure, type ProviderResponse } from './http';
import type { InputImage, ProviderInputUrl } from './input-image';
import { replicateInputUrl } from './replicate-files';
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

export interface ReplicateProviderOptions {
  token: string;
  /** API host, e.g. https://api.replicate.com (a fake in tests); paths start with /v1. */
  apiUrl: string;
  /** Where Replicate should send the completion webhook; none is asked for without it. */
  webhookUrl?: string;
  /** `whsec_<base64>`: the account's webhook signing secret (GET /v1/webhooks/default/secret). */
  webhookSecret?: string;
  /** Time limit of every HTTP request to Replicate. */
  timeoutMs: number;
  /** Input images up to this size go inline as data URIs (REPLICATE_DATA_URI_MAX_BYTES; 256 KiB). */
  dataUriMaxBytes?: number;
  /** Sends `Prefer: wait=N` on create (1..60); off by default, the workflow polls anyway. */
  preferWaitSeconds?: number;
  /** Seconds since the epoch (tests pin it). */
  nowSeconds?: () => number;
}

interface Prediction {
  id?: unknown;
  status?: unknown;
  output?: unknown;
  error?: unknown;
  logs?: unknown;
  data_removed?: unknown;
  completed_at?: unknown;
}

/**
 * Replicate predictions API (shared/reference/providers.md §3). The request id is the prediction id:
 * get and cancel URLs are `{api}/v1/predictions/{id}[/cancel]`.
 */
export class ReplicateProvider implements Provider {
  readonly name = 'replicate' as const;
  private readonly apiUrl: string;
  private readonly nowSeconds: () => number;

  constructor(private readonly opts: ReplicateProviderOptions) {
    this.apiUrl = opts.apiUrl.replace(/\/+$/, '');
    this.nowSeconds = opts.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  async submit(req: SubmitRequest): Promise<{ requestId: string }> {
    const { model, input } = replicateRequest(req.model, req.input);
    const [owner, name, ...rest] = model.split('/');
    if (!owner || !name || rest.length) {
      throw new NonRetryableProviderError('configuration_error', `not a Replicate model name: ${model}`);
    }
    const webhookUrl = this.opts.webhookUrl;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.opts.preferWaitSeconds) {
      headers.prefer = `wait=${Math.min(60, Math.max(1, Math.round(this.opts.preferWaitSeconds)))}`;
    }
    const res = await this.call(
      'create',
      `${this.apiUrl}/v1/models/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/predictions`,
      {
        method: 'POST',
        headers,
        body: JSON.stringify({
          input,
          ...(webhookUrl ? { webhook: webhookUrl, webhook_events_filter: ['completed'] } : {}),
        }),
      },
    );
    if (res.status < 200 || res.status >= 300) throw this.requestError('create', res);
    const prediction = this.prediction('create', res);
    if (typeof prediction.id !== 'string' || !prediction.id) {
      throw new RetryableProviderError(
        'provider_bad_response',
        `replicate create: no prediction id: ${excerpt(res)}`,
      );
    }
    return { requestId: prediction.id };
  }

  async status(job: ProviderJob): Promise<ProviderStatus> {
    const res = await this.get(job.requestId);
    if (res.status === 404) {
      return {
        state: 'failed',
        logs: [],
        error: { code: 'provider_error', message: `Replicate does not know prediction ${job.requestId}` },
      };
    }
    if (res.status < 200 || res.status >= 300) throw this.requestError('get', res);
    const p = this.prediction('get', res);
    const logs = typeof p.logs === 'string' ? p.logs.split('\n').filter(Boolean).slice(-1) : [];
    switch (p.status) {
      case 'starting':
        return { state: 'queued', logs };
      case 'processing':
        return { state: 'running', logs };
      case 'succeeded':
        return { state: 'succeeded', logs };
      case 'failed':
        return { state: 'failed', logs, error: predictionFailure(p.error) };
      case 'canceled':
      case 'aborted':
        return {
          state: 'failed',
          logs,
          error: { code: 'provider_canceled', message: `The prediction was ${p.status} at Replicate.` },
        };
      default:
        // Newer terminal states are reported with completed_at; anything else is still going.
        if (p.completed_at) {
          return {
            state: 'failed',
            logs,
            error: {
              code: 'provider_error',
              message: `Replicate ended the prediction as ${String(p.status)}`,
            },
          };
        }
        return { state: 'running', logs };
    }
  }

  async result(job: ProviderJob): Promise<OutputSource[]> {
    const res = await this.get(job.requestId);
    if (res.status < 200 || res.status >= 300) throw this.requestError('get', res);
    const p = this.prediction('get', res);
    if (p.status !== 'succeeded') {
      throw new NonRetryableProviderError(
        'provider_error',
        `the prediction is ${String(p.status)}, not succeeded`,
      );
    }
    if (p.data_removed === true) {
      throw new NonRetryableProviderError(
        'output_unavailable',
        'Replicate has already deleted the outputs (data_removed)',
      );
    }
    return outputUrls(p.output).map((url) => ({ kind: 'url' as const, url }));
  }

  async cancel(job: ProviderJob): Promise<void> {
    // Best effort, one try: a prediction already finished stays as it is.
    await this.call('cancel', `${this.apiUrl}/v1/predictions/${encodeURIComponent(job.requestId)}/cancel`, {
      method: 'POST',
    }).catch(() => undefined);
  }

  async verifyWebhook(req: WebhookRequest): Promise<WebhookVerdict> {
    if (!this.opts.webhookSecret) return { ok: false, reason: 'REPLICATE_WEBHOOK_SECRET is not configured' };
    const checked = verifyStandardWebhook(
      this.opts.webhookSecret,
      req.headers,
      req.rawBody,
      req.now ?? this.nowSeconds(),
    );
    if (!checked.ok) return checked;
    let body: unknown;
    try {
      body = JSON.parse(req.rawBody.toString('utf8'));
    } catch {
      return { ok: false, reason: 'signed body is not JSON' };
    }
    const id = (body as Prediction | null)?.id;
    if (typeof id !== 'string' || !id) return { ok: false, reason: 'signed body has no prediction id' };
    return { ok: true, requestKey: id, replayKey: `${checked.id}.${checked.timestamp}` };
  }

  /** A data URI for a small image, else a file of `POST /v1/files` (lib/providers/replicate-files.ts). */
  uploadInput(image: InputImage): Promise<ProviderInputUrl> {
    return replicateInputUrl(
      {
        token: this.opts.token,
        apiUrl: this.apiUrl,
        timeoutMs: this.opts.timeoutMs,
        dataUriMaxBytes: this.opts.dataUriMaxBytes ?? 256 * 1024,
      },
      image,
    );
  }

  private get(id: string) {
    return this.call('get', `${this.apiUrl}/v1/predictions/${encodeURIComponent(id)}`, { method: 'GET' });
  }

  private call(action: string, url: string, init: RequestInit): Promise<ProviderResponse> {
    return providerFetch(`replicate ${action}:`, url, {
      ...init,
      headers: { authorization: `Bearer ${this.opts.token}`, accept: 'application/json', ...init.headers },
      timeoutMs: this.opts.timeoutMs,
    });
  }

  private prediction(action: string, res: ProviderResponse): Prediction {
    if (typeof res.json !== 'object' || res.json === null || Array.isArray(res.json)) {
      throw new RetryableProviderError(
        'provider_bad_response',
        `replicate ${action}: the answer is not a prediction: ${excerpt(res)}`,
      );
    }
    return res.json as Prediction;
  }

  private requestError(action: string, res: ProviderResponse): Error {
    const body = (typeof res.json === 'object' && res.json !== null ? res.json : {}) as Record<
      string,
      unknown
    >;
    const transient = transientFailure('replicate', action, res, body.retry_after);
    if (transient) return transient;
    if (res.status === 401 || res.status === 403) {
      return new NonRetryableProviderError(
        'provider_unauthorized',
        `replicate ${action}: the API token was refused (HTTP ${res.status}); check REPLICATE_API_TOKEN`,
      );
    }
    const detail = typeof body.detail === 'string' ? body.detail : excerpt(res);
    if (res.status === 422 || res.status === 400) {
      if (CONTENT_POLICY.test(detail)) return new NonRetryableProviderError('content_policy', detail);
      const fields = Array.isArray(body.invalid_fields)
        ? (body.invalid_fields as { field?: unknown; description?: unknown }[])
            .map((f) => `${String(f?.field ?? 'input')}: ${String(f?.description ?? 'invalid')}`)
            .join('; ')
        : '';
      return new NonRetryableProviderError(
        'invalid_input',
        `The provider rejected the input: ${fields || detail}`,
      );
    }
    return new NonRetryableProviderError(
      'provider_rejected',
      `replicate ${action}: HTTP ${res.status}: ${detail}`,
    );
  }
}

/**
 * The Replicate model and input for a job: with an image, the catalog's image model (if it names
 * one), and Velro's image fields under Replicate's names for that model.
 */
export function replicateRequest(
  model: ModelDefinition,
  input: ModelInput,
): { model: string; input: Record<string, unknown> } {
  const { model: name, imageModel, inputNames = {} } = model.replicate;
  const names: Partial<Record<string, string>> = inputNames;
  const withImage = typeof input.image_url === 'string' && input.image_url !== '';
  const renamed: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(input)) renamed[names[field] ?? field] = value;
  return { model: (withImage && imageModel) || name, input: renamed };
}

// Replicate reports a flagged input or output only in the prediction's error text.
const CONTENT_POLICY =
  /\bnsfw\b|flagged as sensitive|sensitive content|content[ _-]?(policy|moderation)|safety (filter|checker|system)|\bE005\b/i;

function predictionFailure(error: unknown): ProviderFailure {
  const message =
    typeof error === 'string' && error ? error : error ? JSON.stringify(error) : 'The prediction failed.';
  if (CONTENT_POLICY.test(message)) return { code: 'content_policy', message };
  return { code: 'provider_error', message: `replicate: ${message}` };
}

/** File outputs: a URL, an array of URLs, or (some models) an object of them. */
export function outputUrls(output: unknown, depth = 0): string[] {
  if (typeof output === 'string') return /^https?:\/\//.test(output) ? [output] : [];
  if (depth > 3 || typeof output !== 'object' || output === null) return [];
  const values = Array.isArray(output) ? output : Object.values(output);
  return values.flatMap((v) => outputUrls(v, depth + 1));
}
