import { ApplicationFailure, Context } from '@temporalio/activity';
import { loadGeneration, toView } from '../lib/generations/view';
import { withSystemTx, withUserTx, type Tx } from '../lib/db/pool';
import { retryAfterMs } from '../lib/providers/http';
import { VERSION } from '../lib/version';
import {
  cancelDelivery,
  giveUpDelivery,
  loadDeliveryTarget,
  recordAttempt,
  type Attempt,
  type DeliveryTarget,
} from '../lib/webhooks/deliveries-store';
import { disableEndpoint, subscribedEndpoints } from '../lib/webhooks/endpoints-store';
import {
  deliveriesOfEvent,
  eventExists,
  generationEventId,
  generationStatus,
  recordEvent,
  teamGenerationOf,
  type DeliveryTargetSpec,
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

/** Runs bookkeeping of one delivery in a transaction: as its user, or on the system login. */
type Runner = <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>;

/** The event type of a generation's end; a generation that has not ended has none (a bug upstream). */
function endedType(generationId: string, status: GenerationStatus): WebhookEventType {
  const type = EVENT_OF[status];
  if (!type) {
    throw ApplicationFailure.nonRetryable(`generation ${generationId} has not ended (${status})`, 'NotEnded');
  }
  return type;
}

/** A registered endpoint's signing secrets, as loaded with its delivery. */
const endpointSecrets = (row: DeliveryTarget): SigningSecrets => ({
  secret: row.endpoint_secret!,
  previousSecret: row.endpoint_previous_secret,
  previousExpiresAt: row.endpoint_previous_expires_at,
});

/** Backoff before the retry after `attempt` (1-based), as the workflow's retry policy computes it. */
function backoffMs(retry: WebhookRetryPolicy, attempt: number): number {
  return Math.min(retry.initialMs * 2 ** Math.max(0, attempt - 1), retry.maxIntervalMs);
}

/**
 * Outgoing webhooks: record a generation's end as an event, and deliver it, one attempt at a time.
 *
 * A personal generation's event and deliveries are its user's, made and sent as that user (row-level
 * security). A team generation's go to its creator's own targets (webhookUrl, personal endpoints)
 * while the creator is still a member of the team when it ends, and to the team's endpoints. No
 * user acts for the team's deliveries (the creator may not even be a member any more), so the
 * event of a team generation is recorded, and its team deliveries are sent, on the velro_system
 * login, every query naming the generation's creator or the team (db/migrations/010).
 */
export function webhookActivities({ db, systemDb, webhooks }: ActivityDeps) {
  /**
   * Records the event of type `type` and its deliveries to `targets`, unless it was recorded before;
   * the deliveries of the event either way.
   */
  async function recordGenerationEvent(
    tx: Tx,
    e: { userId: string; generationId: string; teamId: string | null; type: WebhookEventType },
    targets: () => Promise<DeliveryTargetSpec[]>,
  ): Promise<WebhookNotice> {
    const eventId = generationEventId(e.generationId, e.type);
    if (!(await eventExists(tx, eventId))) {
      const to = await targets();
      // Nobody to tell (the common case): nothing recorded.
      if (to.length === 0) return { deliveries: [], eventId: null, retry: webhooks.retry };
      const row = (await loadGeneration(tx, e.generationId))!;
      const createdAt = new Date();
      // Built once: every attempt to every target sends these exact bytes.
      const body = JSON.stringify({
        id: eventId,
        type: e.type,
        createdAt: createdAt.toISOString(),
        data: toView(row, webhooks.publicUrl, await webhooks.assetSigningKey(), webhooks.assetUrlTtlSeconds),
      });
      await recordEvent(
        tx,
        {
          id: eventId,
          userId: e.userId,
          teamId: e.teamId,
          type: e.type,
          generationId: row.id,
          body,
          createdAt,
        },
        to,
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
  }

  /** The user's own targets: the generation's webhookUrl, then its personal endpoints. */
  async function ownTargets(
    tx: Tx,
    userId: string,
    webhookUrl: string | null,
    type: WebhookEventType,
  ): Promise<DeliveryTargetSpec[]> {
    const endpoints = await subscribedEndpoints(tx, { userId }, type);
    return [
      ...(webhookUrl ? [{ endpointId: null, teamId: null, url: webhookUrl }] : []),
      ...endpoints.map((e) => ({ endpointId: e.id as string | null, teamId: null, url: e.url })),
    ];
  }

  return {
    /**
     * Records the event of a generation's end and one delivery per target: its webhookUrl, the
     * registered endpoints that subscribe to the event's type, and for a team generation the team's.
     * Repeatable: the event id follows from the generation and the type, and a second call returns
     * the deliveries of the first.
     */
    async createWebhookEvent(p: {
      userId: string;
      generationId: string;
      webhookUrl: string | null;
    }): Promise<WebhookNotice> {
      const personal = await withUserTx(db, p.userId, async (tx) => {
        const g = await generationStatus(tx, p.generationId);
        if (!g || g.teamId) return undefined;
        const type = endedType(p.generationId, g.status);
        return recordGenerationEvent(tx, { ...p, teamId: null, type }, () =>
          ownTargets(tx, p.userId, p.webhookUrl, type),
        );
      });
      if (personal) return personal;
      return withSystemTx(systemDb, async (tx) => {
        const g = await teamGenerationOf(tx, p.generationId, p.userId);
        if (!g) throw ApplicationFailure.nonRetryable(`no generation ${p.generationId}`, 'GenerationMissing');
        const type = endedType(p.generationId, g.status);
        return recordGenerationEvent(tx, { ...p, teamId: g.teamId, type }, async () => [
          ...(g.creatorIsMember ? await ownTargets(tx, p.userId, p.webhookUrl, type) : []),
          ...(await subscribedEndpoints(tx, { teamId: g.teamId }, type)).map((e) => ({
            endpointId: e.id as string | null,
            teamId: g.teamId as string | null,
            url: e.url,
          })),
        ]);
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
      // A personal delivery is bookkept as its user; a team endpoint's on the system login.
      let run: Runner = (fn) => withUserTx(db, p.userId, fn);
      let target = await run(async (tx) => {
        const row = await loadDeliveryTarget(tx, p.deliveryId);
        if (!row) return undefined;
        // Signed with the secrets in force now: a rotation during the retries applies to them.
        const secrets = row.endpoint_id ? endpointSecrets(row) : await ensureAccountSecret(tx, p.userId);
        return { row, secrets };
      });
      if (!target) {
        run = (fn) => withSystemTx(systemDb, fn);
        target = await run(async (tx) => {
          const row = await loadDeliveryTarget(tx, p.deliveryId, p.userId);
          return row && { row, secrets: endpointSecrets(row) };
        });
      }
      if (!target) {
        throw ApplicationFailure.nonRetryable(
          `no webhook delivery ${p.deliveryId}`,
          'WebhookDeliveryMissing',
        );
      }
      const { row, secrets } = target;
      if (row.status !== 'pending') return row.status;
      const record = (a: Attempt, also?: (tx: Tx) => Promise<unknown>) =>
        run(async (tx) => {
          await recordAttempt(tx, row.id, a);
          await also?.(tx);
        });

      if (row.endpoint_id && (row.endpoint_deleted_at || row.endpoint_disabled_at)) {
        const why = row.endpoint_deleted_at ? 'deleted' : 'disabled';
        await run((tx) => cancelDelivery(tx, row.id, `not sent: the endpoint was ${why}`));
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
      const personal = await withUserTx(db, p.userId, (tx) => giveUpDelivery(tx, p.deliveryId, p.reason));
      if (!personal) {
        await withSystemTx(systemDb, (tx) => giveUpDelivery(tx, p.deliveryId, p.reason, p.userId));
      }
    },
  };
}
