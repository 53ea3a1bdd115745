import { admissionActivities } from './admission';
import { capacityActivities } from './capacity';
import type { ActivityDeps } from './deps';
import { inputImageActivities } from './input-images';
import { outputActivities } from './outputs';
import { providerActivities } from './provider';
import { reconciliationActivities } from './reconciliation';
import { settlementActivities } from './settlement';
import { webhookActivities } from './webhooks';

export type { ActivityDeps } from './deps';

/** Every side effect of a generation, closed over its dependencies (one factory, as in Temporal's samples). */
export function createActivities(deps: ActivityDeps) {
  return {
    ...admissionActivities(deps),
    ...capacityActivities(deps),
    ...inputImageActivities(deps),
    ...providerActivities(deps),
    ...outputActivities(deps),
    ...settlementActivities(deps),
    ...reconciliationActivities(deps),
    ...webhookActivities(deps),
  };
}
