import { log, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { WebhookDeliveryInput, WebhookDeliveryStatus } from './definitions';

type Activities = ReturnType<typeof createActivities>;

const { finishWebhookDelivery } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 100,
  },
});

/**
 * Sends one webhook event to one target until it is received. Each attempt is one try of the
 * `deliverWebhook` activity (which records it); Temporal's retry policy spaces the attempts out
 * (exponential backoff, bounded), so however many there are the history stays a few events long.
 * A 410 Gone stops at once; so does an endpoint deleted or disabled meanwhile. Nothing here touches
 * credits: the generation was settled before this workflow started.
 */
export async function WebhookDeliveryWorkflow(input: WebhookDeliveryInput): Promise<WebhookDeliveryStatus> {
  const { deliverWebhook } = proxyActivities<Activities>({
    // The request has its own time limit (WEBHOOK_TIMEOUT_MS); this also covers the bookkeeping.
    startToCloseTimeout: '2 minutes',
    retry: {
      initialInterval: input.retry.initialMs,
      backoffCoefficient: 2,
      maximumInterval: input.retry.maxIntervalMs,
      maximumAttempts: input.retry.maxAttempts,
      nonRetryableErrorTypes: ['WebhookRefused', 'WebhookDeliveryMissing'],
    },
  });
  try {
    return await deliverWebhook({ userId: input.userId, deliveryId: input.deliveryId, retry: input.retry });
  } catch (err) {
    const reason = errorMessage(err);
    log.warn('webhook delivery given up', { deliveryId: input.deliveryId, reason });
    await finishWebhookDelivery({ userId: input.userId, deliveryId: input.deliveryId, reason });
    return 'failed';
  }
}

/** The innermost message: the activity's own failure under the ActivityFailure that wraps it. */
function errorMessage(err: unknown): string {
  let message = err instanceof Error ? err.message : String(err);
  for (let e = err; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof Error && e.message) message = e.message;
  }
  return message.slice(0, 500);
}
