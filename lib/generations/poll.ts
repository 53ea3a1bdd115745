import type { Config } from '../config';
import type { ProviderName } from '../providers/names';

/**
 * The first interval between a generation's provider polls, by provider (the workflow then grows
 * it ×1.5 up to 15 s; provider webhooks cut a wait short). fal and Replicate: PROVIDER_POLL_INITIAL_MS.
 * The local renderer: a quarter of its latency, from 100 ms to 1 s, so its progress shows. The
 * worker's settings decide it (admission answers it), never the API's.
 */
export function firstPollIntervals(
  config: Pick<Config, 'PROVIDER_POLL_INITIAL_MS' | 'LOCAL_PROVIDER_LATENCY_MS'>,
): Record<ProviderName, number> {
  return {
    local: Math.min(1000, Math.max(100, Math.round(config.LOCAL_PROVIDER_LATENCY_MS / 4))),
    fal: config.PROVIDER_POLL_INITIAL_MS,
    replicate: config.PROVIDER_POLL_INITIAL_MS,
  };
}
