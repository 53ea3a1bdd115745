import type { Tx } from '../db/pool';
import { newestFirst, type PageAfter } from '../db/keyset';
import { generateWebhookSecret } from './signing';
import type { WebhookEventType } from './events-store';

/** Endpoints a user may register. */
export const MAX_WEBHOOK_ENDPOINTS = 20;

/** A registered endpoint as stored, without its secrets. */
export interface EndpointRow {
  id: string;
  url: string;
  events: WebhookEventType[] | null;
  disabled_at: Date | null;
  disabled_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/** An endpoint whose secret was just replaced: the new one, and when the previous one stops signing. */
export type RotatedEndpointRow = EndpointRow & { secret: string; previous_expires_at: Date };

const ENDPOINT_COLUMNS = 'id, url, events, disabled_at, disabled_reason, created_at, updated_at';

/**
 * Registers an endpoint with its own secret, unless the user already has MAX_WEBHOOK_ENDPOINTS
 * (`'limit_reached'`). Counting and inserting under one per-user lock, so concurrent registrations
 * cannot both slip under the limit.
 */
export async function createEndpoint(
  tx: Tx,
  userId: string,
  e: { url: string; events: readonly WebhookEventType[] | null; secret: string },
): Promise<EndpointRow | 'limit_reached'> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`webhook-endpoints:${userId}`]);
  const { rows: count } = await tx.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM webhook_endpoints WHERE deleted_at IS NULL',
  );
  if (count[0]!.n >= MAX_WEBHOOK_ENDPOINTS) return 'limit_reached';
  const { rows } = await tx.query<EndpointRow>(
    `INSERT INTO webhook_endpoints (user_id, url, events, secret) VALUES ($1, $2, $3, $4)
     RETURNING ${ENDPOINT_COLUMNS}`,
    [userId, e.url, e.events, e.secret],
  );
  return rows[0]!;
}

/** A page of the caller's endpoints (RLS), newest first; `limit + 1` rows, for toPage. */
export function listEndpoints(tx: Tx, page: { after?: PageAfter; limit: number }): Promise<EndpointRow[]> {
  return newestFirst<EndpointRow>(tx, {
    select: `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints`,
    where: ['deleted_at IS NULL'],
    ...page,
  });
}

/** One of the caller's endpoints (RLS), unless deleted. */
export async function getEndpoint(tx: Tx, id: string): Promise<EndpointRow | undefined> {
  const { rows } = await tx.query<EndpointRow>(
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`,
    [id],
  );
  return rows[0];
}

/** Soft-deletes an endpoint (its deliveries stay readable); false when there was none to delete. */
export async function deleteEndpoint(tx: Tx, id: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    'UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL',
    [id],
  );
  return (rowCount ?? 0) > 0;
}

/** Gives an endpoint a new secret; the old one keeps signing too for `overlapSeconds`. */
export async function rotateEndpointSecret(
  tx: Tx,
  id: string,
  overlapSeconds: number,
): Promise<RotatedEndpointRow | undefined> {
  const { rows } = await tx.query<RotatedEndpointRow>(
    `UPDATE webhook_endpoints
     SET previous_secret = secret, previous_expires_at = now() + make_interval(secs => $2),
         secret = $3, updated_at = now()
     WHERE id = $1 AND deleted_at IS NULL
     RETURNING ${ENDPOINT_COLUMNS}, secret, previous_expires_at`,
    [id, overlapSeconds, generateWebhookSecret()],
  );
  return rows[0];
}

/** The live endpoints (not deleted, not disabled) that want events of `type`, oldest first. */
export async function subscribedEndpoints(
  tx: Tx,
  type: WebhookEventType,
): Promise<{ id: string; url: string }[]> {
  const { rows } = await tx.query<{ id: string; url: string }>(
    `SELECT id, url FROM webhook_endpoints
     WHERE deleted_at IS NULL AND disabled_at IS NULL AND (events IS NULL OR $1 = ANY (events))
     ORDER BY created_at, id`,
    [type],
  );
  return rows;
}

/** Disables an endpoint (nothing more is sent to it) saying why; one already disabled keeps its reason. */
export async function disableEndpoint(tx: Tx, id: string, reason: string): Promise<void> {
  await tx.query(
    `UPDATE webhook_endpoints
     SET disabled_at = now(), disabled_reason = $2, updated_at = now()
     WHERE id = $1 AND disabled_at IS NULL`,
    [id, reason],
  );
}
