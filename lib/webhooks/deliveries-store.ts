import type { Tx } from '../db/pool';
import { newestFirst, type PageAfter } from '../db/keyset';

/** A delivery's life: pending while retried, then delivered, failed (given up), gone (410) or canceled. */
export const WEBHOOK_DELIVERY_STATES = ['pending', 'delivered', 'failed', 'gone', 'canceled'] as const;
export type WebhookDeliveryState = (typeof WEBHOOK_DELIVERY_STATES)[number];

/** A delivery as listed: with its event's type and generation. */
export interface DeliveryRow {
  id: string;
  event_id: string;
  type: string;
  generation_id: string | null;
  endpoint_id: string | null;
  url: string;
  status: WebhookDeliveryState;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
}

/**
 * A page of the caller's personal deliveries (its generations' webhookUrl and its own endpoints; not
 * those to a team's endpoints), newest first, filtered by endpoint and/or generation; `limit + 1`
 * rows, for toPage.
 */
export function listDeliveries(
  tx: Tx,
  filter: { endpointId?: string; generationId?: string },
  page: { after?: PageAfter; limit: number },
): Promise<DeliveryRow[]> {
  return pageOfDeliveries(tx, ['d.team_id IS NULL', 'd.user_id = current_app_user()'], [], filter, page);
}

/** As listDeliveries, for the deliveries to a team's endpoints (its admins read them). */
export function listTeamDeliveries(
  tx: Tx,
  teamId: string,
  filter: { endpointId?: string; generationId?: string },
  page: { after?: PageAfter; limit: number },
): Promise<DeliveryRow[]> {
  return pageOfDeliveries(tx, ['d.team_id = $1'], [teamId], filter, page);
}

function pageOfDeliveries(
  tx: Tx,
  where: string[],
  params: unknown[],
  filter: { endpointId?: string; generationId?: string },
  page: { after?: PageAfter; limit: number },
): Promise<DeliveryRow[]> {
  where = [...where];
  params = [...params];
  if (filter.endpointId) {
    params.push(filter.endpointId);
    where.push(`d.endpoint_id = $${params.length}`);
  }
  if (filter.generationId) {
    params.push(filter.generationId);
    where.push(`e.generation_id = $${params.length}`);
  }
  return newestFirst<DeliveryRow>(tx, {
    select: `SELECT d.id, d.event_id, e.type, e.generation_id, d.endpoint_id, d.url, d.status, d.attempts,
                    d.last_status, d.last_error, d.last_attempt_at, d.delivered_at, d.created_at
             FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id`,
    alias: 'd',
    cursorTable: 'webhook_deliveries',
    where,
    params,
    ...page,
  });
}

/** What one attempt needs: the target, the event's bytes, and its endpoint's secrets and state. */
export interface DeliveryTarget {
  id: string;
  event_id: string;
  endpoint_id: string | null;
  /** Set for a delivery to a team's endpoint. */
  team_id: string | null;
  url: string;
  status: WebhookDeliveryState;
  body: string;
  endpoint_secret: string | null;
  endpoint_previous_secret: string | null;
  endpoint_previous_expires_at: Date | null;
  endpoint_deleted_at: Date | null;
  endpoint_disabled_at: Date | null;
}

/**
 * The delivery, as the caller's transaction may see it: a personal one under the user's row-level
 * security; with `teamDeliveryOf` (on the system login), only a delivery to a team's endpoint of
 * that user's generation. A team endpoint of a team since deleted counts as deleted.
 */
export async function loadDeliveryTarget(
  tx: Tx,
  deliveryId: string,
  teamDeliveryOf?: string,
): Promise<DeliveryTarget | undefined> {
  const { rows } = await tx.query<DeliveryTarget>(
    `SELECT d.id, d.event_id, d.endpoint_id, d.team_id, d.url, d.status, e.body,
            ep.secret AS endpoint_secret, ep.previous_secret AS endpoint_previous_secret,
            ep.previous_expires_at AS endpoint_previous_expires_at,
            coalesce(ep.deleted_at, t.deleted_at) AS endpoint_deleted_at, ep.disabled_at AS endpoint_disabled_at
     FROM webhook_deliveries d
     JOIN webhook_events e ON e.id = d.event_id
     LEFT JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
     LEFT JOIN teams t ON t.id = d.team_id
     WHERE d.id = $1 AND ($2::uuid IS NULL OR (d.team_id IS NOT NULL AND d.user_id = $2))`,
    [deliveryId, teamDeliveryOf ?? null],
  );
  return rows[0];
}

export interface Attempt {
  /** The delivery's state after this attempt: still `pending` when it is to be retried. */
  status: WebhookDeliveryState;
  httpStatus: number | null;
  error: string | null;
}

/** Records one attempt; a delivery that has already ended is left alone. */
export async function recordAttempt(tx: Tx, deliveryId: string, a: Attempt): Promise<void> {
  await tx.query(
    `UPDATE webhook_deliveries
     SET attempts = attempts + 1, last_attempt_at = now(), last_status = $2, last_error = $3, status = $4,
         delivered_at = CASE WHEN $4 = 'delivered' THEN now() END, updated_at = now()
     WHERE id = $1 AND status = 'pending'`,
    [deliveryId, a.httpStatus, a.error?.slice(0, 1000) ?? null, a.status],
  );
}

/** A pending delivery not sent at all (its endpoint went away), saying why. */
export async function cancelDelivery(tx: Tx, deliveryId: string, reason: string): Promise<void> {
  await tx.query(
    `UPDATE webhook_deliveries SET status = 'canceled', last_error = $2, updated_at = now()
     WHERE id = $1 AND status = 'pending'`,
    [deliveryId, reason],
  );
}

/**
 * A pending delivery given up (retries exhausted); its last attempt's error, if any, stays the
 * reason. With `teamDeliveryOf` (system login), only a team delivery of that user's generation.
 * Whether there was such a pending delivery.
 */
export async function giveUpDelivery(
  tx: Tx,
  deliveryId: string,
  reason: string,
  teamDeliveryOf?: string,
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE webhook_deliveries SET status = 'failed', last_error = coalesce(last_error, $2), updated_at = now()
     WHERE id = $1 AND status = 'pending' AND ($3::uuid IS NULL OR (team_id IS NOT NULL AND user_id = $3))`,
    [deliveryId, reason.slice(0, 1000), teamDeliveryOf ?? null],
  );
  return (rowCount ?? 0) > 0;
}
