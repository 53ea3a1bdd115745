import type { Readable } from 'node:stream';
import type { ModelDefinition, ModelInput } from '../catalog/models';
import type { InputImage, ProviderInputUrl } from './input-image';
import type { ProviderName } from './names';

export type { InputImage, ProviderInputUrl, ProviderName };

/** Where an output can be read from: a provider URL (downloaded at once: they expire) or a local render. */
export type OutputSource =
  | { kind: 'url'; url: string; contentType?: string }
  | {
      kind: 'local';
      media: 'image' | 'animation';
      prompt: string;
      seed: number;
      width: number;
      height: number;
      durationSeconds?: number;
      /** Input images it starts from, as `storage:<key>` references (absent: rendered from the prompt). */
      images?: { field: string; ref: string }[];
    };

export interface ProviderFailure {
  /** Machine-readable: provider_error, content_policy, invalid_input, provider_timeout, ... */
  code: string;
  message: string;
}

export type ProviderStatus =
  | { state: 'queued'; queuePosition?: number; logs: string[] }
  | { state: 'running'; logs: string[] }
  | { state: 'succeeded'; logs: string[] }
  | { state: 'failed'; logs: string[]; error: ProviderFailure };

export interface SubmitRequest {
  generationId: string;
  model: ModelDefinition;
  input: ModelInput;
}

/** A request already submitted to a provider, with what it was asked. */
export interface ProviderJob {
  requestId: string;
  generationId: string;
  model: ModelDefinition;
  input: ModelInput;
}

/** One model provider behind one interface: fal, Replicate, or the built-in local renderer. */
export interface Provider {
  readonly name: ProviderName;
  submit(req: SubmitRequest): Promise<{ requestId: string }>;
  status(job: ProviderJob): Promise<ProviderStatus>;
  /** The outputs of a request whose status is `succeeded`. */
  result(job: ProviderJob): Promise<OutputSource[]>;
  /** Best effort: a provider that cannot cancel, or a job already done, is not an error. */
  cancel(job: ProviderJob): Promise<void>;
  /**
   * Checks an inbound webhook's signature and freshness over its raw bytes, before anything in it is
   * trusted. A verified event only says "look at this request now": the workflow then polls, so a
   * webhook can never decide an outcome by itself. Providers without webhooks leave it out.
   */
  verifyWebhook?(req: WebhookRequest): Promise<WebhookVerdict>;
  /**
   * Puts an input image where this provider's models can fetch it (fal storage, a Replicate file or
   * data URI). Errors are Retryable/NonRetryableProviderError like the rest. Providers that read
   * Velro storage themselves (local) leave it out.
   */
  uploadInput?(image: InputImage): Promise<ProviderInputUrl>;
  /** Opens a local output; URL outputs are downloaded by the storage step, not the provider. */
  openLocal?(
    source: Extract<OutputSource, { kind: 'local' }>,
  ): Promise<{ body: Readable; contentType: string }>;
}

/** An inbound provider webhook exactly as received. */
export interface WebhookRequest {
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer;
  /** Seconds since the epoch; tests pin it. */
  now?: number;
}

export type WebhookVerdict =
  | {
      ok: true;
      /** The provider's own request id (fal request_id, Replicate prediction id). */
      requestKey: string;
      /**
       * Identifies this inbound webhook for replay protection: the same bytes sent again give the
       * same key (a replay, refused), while a provider's own retry carries a new timestamp and so a
       * new key. Not an outgoing webhook delivery (lib/webhooks).
       */
      replayKey: string;
    }
  | { ok: false; reason: string };

/**
 * The key a stored request id is looked up by. Adapters may keep more than the provider's id in the
 * request id (fal: the queue URLs it returned, as JSON); the key is what webhooks name. Mirrors the
 * SQL function provider_request_key (db/migrations/004_provider_requests.sql).
 */
export function providerRequestKey(requestId: string): string {
  if (!requestId.startsWith('{')) return requestId;
  try {
    const parsed = JSON.parse(requestId) as { request_id?: unknown };
    return typeof parsed.request_id === 'string' ? parsed.request_id : requestId;
  } catch {
    return requestId;
  }
}

/**
 * A provider error that a later attempt may fix (rate limit, 5xx, timeout, unreadable answer). The
 * activity turns it into a retryable failure named by `code`; `retryAfterMs` (a provider's
 * Retry-After, already bounded) becomes the next retry delay.
 */
export class RetryableProviderError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetryableProviderError';
  }
}

/** A provider error that retrying will not fix (bad input, content policy): refund at once. */
export class NonRetryableProviderError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'NonRetryableProviderError';
  }
}
