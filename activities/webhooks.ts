import { ApplicationFailure, Context } from '@temporalio/activity';
import { loadGeneration, toView } from '../lib/generations/view';
import { withUserTx, type Tx } from '../lib/db/pool';
import { retryAfterMs } from '../lib/providers/http';
import { VERSION } from '../lib/version';
import {
  cancelDelivery,
  giveUpDelivery,
  loadDeliveryTarget,
  recordAttempt,
  type Attempt,
} from '../lib/webhooks/deliveries-store';
import { disableEndpoint, subscribedEndpoints } from '../lib/webhooks/endpoints-store';
import {
  deliveriesOfEvent,
  eventExists,
  generationEventId,
  generationStatus,
  recordEvent,
  type WebhookEventType,
} from '../lib/webhooks/events-store';
import { postWebhook } from '../lib/webhooks/http';
import { ensureAccountSecret } from '../lib/webhooks/secrets-store';
import { webhookHeaders, type SigningSecrets } from '../lib/webhooks/signing';
import {
  webhookDeliveryWorkflowId,
  type GenerationStatus,
  type WebhookDeliveryStatus,
  type WebhookNotice,
  type WebhookRetryPolicy,
} from '../workflows/definitions';
import type { ActivityDeps } from './deps';

const EVENT_OF: Partial<Record<GenerationStatus, WebhookEventType>> = {
  succeeded: 'generation.succeeded',
  failed: 'generation.failed',
  canceled: 'generation.canceled',
};

/** Backoff before the retry after `attempt` (1-based), as the workflow's retry policy computes it. */
function backoffMs(retry: WebhookRetryPolicy, attempt: number): number {
  return Math.min(retry.initialMs * 2 ** Math.max(0, attempt - 1), retry.maxIntervalMs);
}

/** Outgoing webhooks: record a generation's end as an event, and deliver it, one attempt at a time. */
export function webhookActivities({ db, webhooks }: ActivityDeps) {
  return {
    /**
     * Records the event of a generation's end and one delivery per target: its webhookUrl, and the
     * registered endpoints that subscribe to the event's type. Repeatable: the event id follows from
     * the generation and the type, and a second call returns the deliveries of the first.
     */
    async createWebhookEvent(p: {
      userId: string;
      generationId: string;
      webhookUrl: string | null;
    }): Promise<WebhookNotice> {
      return withUserTx(db, p.userId, async (tx) => {
        const status = await generationStatus(tx, p.generationId);
        if (!status)
          throw ApplicationFailure.nonRetryable(`no generation ${p.generationId}`, 'GenerationMissing');
        const type = EVENT_OF[status];
        if (!type) {
          throw ApplicationFailure.nonRetryable(
            `generation ${p.generationId} has not ended (${status})`,
            'NotEnded',
          );
        }
        const eventId = generationEventId(p.generationId, type);
        if (!(await eventExists(tx, eventId))) {
          const endpoints = await subscribedEndpoints(tx, type);
          const targets = [
            ...(p.webhookUrl ? [{ endpointId: null, url: p.webhookUrl }] : []),
            ...endpoints.map((e) => ({ endpointId: e.id as string | null, url: e.url })),
          ];
          // Nobody to tell (the common case): nothing recorded.
          if (targets.length === 0) return { deliveries: [], eventId: null, retry: webhooks.retry };
          const row = (await loadGeneration(tx, p.generationId))!;
          const createdAt = new Date();
          // Built once: every attempt to every target sends these exact bytes.
          const body = JSON.stringify({
            id: eventId,
            type,
            createdAt: createdAt.toISOString(),
            data: toView(
              row,
              webhooks.publicUrl,
              await webhooks.assetSigningKey(),
              webhooks.assetUrlTtlSeconds,
            ),
          });
          await recordEvent(
            tx,
            { id: eventId, userId: p.userId, type, generationId: row.id, body, createdAt },
            targets,
          );
        }
        const rows = await deliveriesOfEvent(tx, eventId);
        return {
          eventId,
          deliveries: rows.map((d) => ({
            deliveryId: d.id,
            workflowId: webhookDeliveryWorkflowId(eventId, d.endpoint_id),
          })),
          retry: webhooks.retry,
        };
      });
    },

    /**
     * One attempt at one delivery. 2xx: delivered. 410 Gone: given up, and a registered endpoint is
     * disabled. A refused target (SSRF policy): given up. Anything else is recorded, then thrown as
     * a retryable failure, so the workflow's retry policy tries again later (honouring Retry-After).
     */
    async deliverWebhook(p: {
      userId: string;
      deliveryId: string;
      retry: WebhookRetryPolicy;
    }): Promise<WebhookDeliveryStatus> {
      const target = await withUserTx(db, p.userId, async (tx) => {
        const row = await loadDeliveryTarget(tx, p.deliveryId);
        if (!row) return undefined;
        // Signed with the secrets in force now: a rotation during the retries applies to them.
        const secrets: SigningSecrets = row.endpoint_id
          ? {
              secret: row.endpoint_secret!,
              previousSecret: row.endpoint_previous_secret,
              previousExpiresAt: row.endpoint_previous_expires_at,
            }
          : await ensureAccountSecret(tx, p.userId);
        return { row, secrets };
      });
      if (!target) {
        throw ApplicationFailure.nonRetryable(
          `no webhook delivery ${p.deliveryId}`,
          'WebhookDeliveryMissing',
        );
      }
      const { row, secrets } = target;
      if (row.status !== 'pending') return row.status;
      const record = (a: Attempt, also?: (tx: Tx) => Promise<unknown>) =>
        withUserTx(db, p.userId, async (tx) => {
          await recordAttempt(tx, row.id, a);
          await also?.(tx);
        });

      if (row.endpoint_id && (row.endpoint_deleted_at || row.endpoint_disabled_at)) {
        const why = row.endpoint_deleted_at ? 'deleted' : 'disabled';
        await withUserTx(db, p.userId, (tx) =>
          cancelDelivery(tx, row.id, `not sent: the endpoint was ${why}`),
        );
        return 'canceled';
      }

      const result = await postWebhook({
        url: row.url,
        body: row.body,
        headers: {
          'content-type': 'application/json',
          'user-agent': `Velro-Webhooks/${VERSION}`,
          ...webhookHeaders(secrets, row.event_id, row.body),
        },
        policy: webhooks.urlPolicy,
        timeoutMs: webhooks.timeoutMs,
        lookup: webhooks.lookup,
      });

      if (result.kind === 'refused') {
        await record({ status: 'failed', httpStatus: null, error: `refused: ${result.error}` });
        return 'failed';
      }
      if (result.kind === 'answer' && result.status >= 200 && result.status < 300) {
        await record({ status: 'delivered', httpStatus: result.status, error: null });
        return 'delivered';
      }
      if (result.kind === 'answer' && result.status === 410) {
        await record({ status: 'gone', httpStatus: 410, error: 'the receiver answered 410 Gone' }, (tx) =>
          row.endpoint_id
            ? disableEndpoint(tx, row.endpoint_id, 'It answered 410 Gone to a delivery.')
            : Promise.resolve(),
        );
        return 'gone';
      }

      const error =
        result.kind === 'answer'
          ? `HTTP ${result.status}${result.status >= 300 && result.status < 400 ? ' (redirects are not followed)' : ''}` +
            (result.excerpt ? `: ${result.excerpt}` : '')
          : result.error;
      await record({ status: 'pending', httpStatus: result.kind === 'answer' ? result.status : null, error });
      const hint = result.kind === 'answer' ? retryAfterMs(result.retryAfter) : undefined;
      const attempt = Context.current().info.attempt;
      throw ApplicationFailure.create({
        type: 'WebhookDeliveryFailed',
        message: `delivery attempt ${attempt} failed: ${error}`.slice(0, 500),
        // Retry-After is honoured when it asks for longer than the backoff would wait.
        ...(hint !== undefined ? { nextRetryDelay: Math.max(hint, backoffMs(p.retry, attempt)) } : {}),
      });
    },

    /** The retries are exhausted: the delivery is given up (its last attempt says why). */
    async finishWebhookDelivery(p: { userId: string; deliveryId: string; reason: string }): Promise<void> {
      await withUserTx(db, p.userId, (tx) => giveUpDelivery(tx, p.deliveryId, p.reason));
    },
  };
}
