import type { Readable } from 'node:stream';
import type { ModelDefinition, ModelInput } from '../catalog/models';

export type ProviderName = 'local' | 'fal' | 'replicate';

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
  /** Where the provider should send its completion webhook, if it supports one. */
  webhookUrl?: string;
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
  /** Opens a local output; URL outputs are downloaded by the storage step, not the provider. */
  openLocal?(
    source: Extract<OutputSource, { kind: 'local' }>,
  ): Promise<{ body: Readable; contentType: string }>;
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
