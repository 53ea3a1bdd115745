import { Counter, Histogram, type Registry } from 'prom-client';
import { NonRetryableProviderError, RetryableProviderError } from '../providers/provider';

export type GenerationOutcome = 'succeeded' | 'failed' | 'canceled';
export type ProviderOperation = 'submit' | 'status' | 'result' | 'cancel' | 'upload';

/** What activities count (activities/settlement.ts, activities/provider.ts and the calls around them). */
export interface WorkerMetrics {
  /** A generation ended, `ageSeconds` after it was created. Called once per generation. */
  generationFinished(model: string, outcome: GenerationOutcome, ageSeconds: number): void;
  /** A call to a provider failed. */
  providerError(provider: string, operation: ProviderOperation, err: unknown): void;
}

export const noWorkerMetrics: WorkerMetrics = {
  generationFinished() {},
  providerError() {},
};

/** The provider error's code (a short snake_case word), `timeout`, or `unexpected`. */
export function providerErrorKind(err: unknown): string {
  if (err instanceof NonRetryableProviderError || err instanceof RetryableProviderError) {
    return /^[a-z][a-z0-9_]{0,39}$/.test(err.code) ? err.code : 'other';
  }
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return 'timeout';
  return 'unexpected';
}

/** Velro's worker metrics on `registry`. */
export function workerMetrics(registry: Registry): WorkerMetrics {
  const finished = new Counter({
    name: 'velro_generations_finished_total',
    help: 'Generations ended, by model and outcome (succeeded, failed, canceled)',
    labelNames: ['model', 'outcome'],
    registers: [registry],
  });
  const endToEnd = new Histogram({
    name: 'velro_generation_duration_seconds',
    help: 'From a generation being created to it ending (created_at to completed_at), by model and outcome',
    labelNames: ['model', 'outcome'],
    buckets: [1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600],
    registers: [registry],
  });
  const providerErrors = new Counter({
    name: 'velro_provider_errors_total',
    help: 'Failed calls to a provider, by provider, operation and kind (the error code)',
    labelNames: ['provider', 'operation', 'kind'],
    registers: [registry],
  });
  return {
    generationFinished(model, outcome, ageSeconds) {
      finished.inc({ model, outcome });
      endToEnd.observe({ model, outcome }, ageSeconds);
    },
    providerError(provider, operation, err) {
      providerErrors.inc({ provider, operation, kind: providerErrorKind(err) });
    },
  };
}
