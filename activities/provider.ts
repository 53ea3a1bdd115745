import { ApplicationFailure } from '@temporalio/activity';
import { findModel } from '../lib/catalog/models';
import { withUserTx } from '../lib/db/pool';
import { providerRequestIdOf, recordProviderRequest } from '../lib/generations/store';
import { noWorkerMetrics, type ProviderOperation } from '../lib/metrics/worker-metrics';
import {
  NonRetryableProviderError,
  RetryableProviderError,
  type Provider,
  type ProviderJob,
  type ProviderStatus,
} from '../lib/providers/provider';
import type { GenerationInput } from '../workflows/definitions';
import type { ActivityDeps } from './deps';

export type JobInput = GenerationInput & { requestId: string };

/**
 * Rethrows provider errors as failures named by their code: "do not retry" ones as non-retryable,
 * transient ones as retryable, with the provider's Retry-After as the next retry delay.
 */
export async function providerCall<T>(fn: () => Promise<T>, onError?: (err: unknown) => void): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    onError?.(err);
    if (err instanceof NonRetryableProviderError)
      throw ApplicationFailure.nonRetryable(err.message, err.code);
    if (err instanceof RetryableProviderError) {
      throw ApplicationFailure.create({
        message: err.message,
        type: err.code,
        nonRetryable: false,
        ...(err.retryAfterMs !== undefined ? { nextRetryDelay: err.retryAfterMs } : {}),
      });
    }
    throw err;
  }
}

/** Counts a failed call to `provider` in the worker's metrics. */
export const countProviderError =
  (deps: Pick<ActivityDeps, 'metrics'>, provider: string, operation: ProviderOperation) => (err: unknown) =>
    (deps.metrics ?? noWorkerMetrics).providerError(provider, operation, err);

export function providerFor(
  deps: ActivityDeps,
  input: Pick<GenerationInput, 'generationId' | 'provider' | 'model' | 'input'>,
): { provider: Provider; job: Omit<ProviderJob, 'requestId'> } {
  const provider = deps.providers[input.provider];
  const model = findModel(input.model);
  if (!provider || !model) {
    throw ApplicationFailure.nonRetryable(
      `no provider ${input.provider} for model ${input.model}`,
      'configuration_error',
    );
  }
  return { provider, job: { generationId: input.generationId, model, input: input.input } };
}

export function providerActivities(deps: ActivityDeps) {
  return {
    /**
     * Submits the job once: a request id already stored for this generation is returned as is, so
     * a retried or replayed submit never starts a second paid job. Then asks for the job's status,
     * the poll the workflow would otherwise make at once as a step of its own; when that ask fails,
     * the answer has no status and the workflow polls.
     */
    async submitToProvider(input: GenerationInput): Promise<{ requestId: string; status?: ProviderStatus }> {
      const { provider, job } = providerFor(deps, input);
      let requestId = await withUserTx(deps.db, input.userId, (tx) =>
        providerRequestIdOf(tx, input.generationId),
      );
      if (!requestId) {
        ({ requestId } = await providerCall(
          () => provider.submit(job),
          countProviderError(deps, input.provider, 'submit'),
        ));
        await withUserTx(deps.db, input.userId, (tx) =>
          recordProviderRequest(tx, input.generationId, requestId!),
        );
      }
      const status = await provider.status({ ...job, requestId }).catch((err: unknown) => {
        countProviderError(deps, input.provider, 'status')(err);
        return undefined;
      });
      return status ? { requestId, status } : { requestId };
    },

    async checkProvider(input: JobInput): Promise<ProviderStatus> {
      const { provider, job } = providerFor(deps, input);
      return providerCall(
        () => provider.status({ ...job, requestId: input.requestId }),
        countProviderError(deps, input.provider, 'status'),
      );
    },

    async cancelAtProvider(input: JobInput): Promise<void> {
      const { provider, job } = providerFor(deps, input);
      await provider.cancel({ ...job, requestId: input.requestId }).catch((err: unknown) => {
        countProviderError(deps, input.provider, 'cancel')(err);
        throw err;
      });
    },
  };
}
