import type { Config } from '../config';
import type { CapacityLimits } from './store';

/** One deployment's pools: the workers (and API) of one namespace and task queue. */
export const capacityScope = (config: Pick<Config, 'TEMPORAL_NAMESPACE' | 'TEMPORAL_TASK_QUEUE'>) =>
  `${config.TEMPORAL_NAMESPACE}/${config.TEMPORAL_TASK_QUEUE}`;

/** The caps and aging of the configuration. */
export function capacityLimits(config: Config): CapacityLimits {
  return {
    scope: capacityScope(config),
    providerCaps: {
      fal: config.FAL_MAX_CONCURRENCY,
      replicate: config.REPLICATE_MAX_CONCURRENCY,
      local: config.LOCAL_MAX_CONCURRENCY,
    },
    accountCaps: { video: config.CAPACITY_ACCOUNT_MAX_VIDEO, image: config.CAPACITY_ACCOUNT_MAX_IMAGE },
    agingSeconds: config.CAPACITY_AGING_SECONDS,
  };
}
