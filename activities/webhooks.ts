import { ApplicationFailure, Context } from '@temporalio/activity';
import { loadGeneration, toView } from '../lib/generations/view';
import { withUserTx, type Tx } from '../lib/db/pool';
import { retryAfterMs } from '../lib/providers/http';
import { VERSION } from '../lib/version';
import { postWebhook } from '../lib/webhooks/http';
import { webhookHeaders, type SigningSecrets } from '../lib/webhooks/signing';
import {
  deliveryId as deliveryIdOf,
  ensureAccountSecret,
  generationEventId,
  type WebhookEventType,
} from '../lib/webhooks/store';
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

interface TargetRow {
  id: string;
  event_id: string;
  endpoint_id: string | null;
  url: string;
  status: 'pending' | WebhookDeliveryStatus;
  body: string;
  endpoint_secret: string | null;
  endpoint_previous_secret: string | null;
  endpoint_previous_expires_at: Date | null;
  endpoint_deleted_at: Date | null;
  endpoint_disabled_at: Date | null;
}

interface Attempt {
  status: 'pending' | WebhookDeliveryStatus;
  httpStatus: number | null;
  error: string | null;
}

/** Records one attempt; a delivery that has already ended is left alone. */
async function recordAttempt(tx: Tx, deliveryId: string, a: Attempt): Promise<void> {
  await tx.query(
    `UPDATE webhook_deliveries
     SET attempts = attempts + 1, last_attempt_at = now(), last_status = $2, last_error = $3, status = $4,
         delivered_at = CASE WHEN $4 = 'delivered' THEN now() END, updated_at = now()
     WHERE id = $1 AND status = 'pending'`,
    [deliveryId, a.httpStatus, a.error?.slice(0, 1000) ?? null, a.status],
  );
}

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
        const { rows: found } = await tx.query<{ status: GenerationStatus }>(
          'SELECT status FROM generations WHERE id = $1',
          [p.generationId],
        );
        if (!found[0])
          throw ApplicationFailure.nonRetryable(`no generation ${p.generationId}`, 'GenerationMissing');
        const type = EVENT_OF[found[0].status];
        if (!type) {
          throw ApplicationFailure.nonRetryable(
            `generation ${p.generationId} has not ended (${found[0].status})`,
            'NotEnded',
          );
        }
        const eventId = generationEventId(p.generationId, type);
        const known = await tx.query('SELECT 1 FROM webhook_events WHERE id = $1', [eventId]);
        if (known.rowCount === 0) {
          const { rows: endpoints } = await tx.query<{ id: string; url: string }>(
            `SELECT id, url FROM webhook_endpoints
             WHERE deleted_at IS NULL AND disabled_at IS NULL AND (events IS NULL OR $1 = ANY (events))
             ORDER BY created_at, id`,
            [type],
          );
          const targets = [
            ...(p.webhookUrl ? [{ id: null, url: p.webhookUrl }] : []),
            ...endpoints.map((e) => ({ id: e.id as string | null, url: e.url })),
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
          await tx.query(
            `INSERT INTO webhook_events (id, user_id, type, generation_id, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
            [eventId, p.userId, type, row.id, body, createdAt],
          );
          for (const target of targets) {
            await tx.query(
              `INSERT INTO webhook_deliveries (id, event_id, user_id, endpoint_id, url)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
              [deliveryIdOf(eventId, target.id), eventId, p.userId, target.id, target.url],
            );
          }
        }
        const { rows } = await tx.query<{ id: string; endpoint_id: string | null }>(
          'SELECT id, endpoint_id FROM webhook_deliveries WHERE event_id = $1 ORDER BY created_at, id',
          [eventId],
        );
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
        const { rows } = await tx.query<TargetRow>(
          `SELECT d.id, d.event_id, d.endpoint_id, d.url, d.status, e.body,
                  ep.secret AS endpoint_secret, ep.previous_secret AS endpoint_previous_secret,
                  ep.previous_expires_at AS endpoint_previous_expires_at,
                  ep.deleted_at AS endpoint_deleted_at, ep.disabled_at AS endpoint_disabled_at
           FROM webhook_deliveries d
           JOIN webhook_events e ON e.id = d.event_id
           LEFT JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
           WHERE d.id = $1`,
          [p.deliveryId],
        );
        const row = rows[0];
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
          tx.query(
            `UPDATE webhook_deliveries SET status = 'canceled', last_error = $2, updated_at = now()
             WHERE id = $1 AND status = 'pending'`,
            [row.id, `not sent: the endpoint was ${why}`],
          ),
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
            ? tx.query(
                `UPDATE webhook_endpoints
                 SET disabled_at = now(), disabled_reason = 'It answered 410 Gone to a delivery.', updated_at = now()
                 WHERE id = $1 AND disabled_at IS NULL`,
                [row.endpoint_id],
              )
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
      await withUserTx(db, p.userId, (tx) =>
        tx.query(
          `UPDATE webhook_deliveries SET status = 'failed', last_error = coalesce(last_error, $2), updated_at = now()
           WHERE id = $1 AND status = 'pending'`,
          [p.deliveryId, p.reason.slice(0, 1000)],
        ),
      );
    },
  };
}
