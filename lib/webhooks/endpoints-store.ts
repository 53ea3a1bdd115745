import type { Tx } from '../db/pool';
import { newestFirst, type PageAfter } from '../db/keyset';
import { generateWebhookSecret } from './signing';
import type { WebhookEventType } from './events-store';

/** Endpoints a user, or a team, may register. */
export const MAX_WEBHOOK_ENDPOINTS = 20;

/**
 * Whose endpoints: a user's personal ones, or a team's (db/migrations/010). Every function names
 * the owner explicitly: row-level security also shows a team's admins the team's endpoints, and
 * the worker reads a team generation's targets on the system login, where no policy filters.
 */
export type EndpointOwner = { userId: string } | { teamId: string };

/** A registered endpoint as stored, without its secrets. */
export interface EndpointRow {
  id: string;
  url: string;
  events: WebhookEventType[] | null;
  disabled_at: Date | null;
  disabled_reason: string | null;
  /** A team endpoint's team and the admin who registered it; null for a personal endpoint. */
  team_id: string | null;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
}

/** An endpoint whose secret was just replaced: the new one, and when the previous one stops signing. */
export type RotatedEndpointRow = EndpointRow & { secret: string; previous_expires_at: Date };

const ENDPOINT_COLUMNS =
  'id, url, events, disabled_at, disabled_reason, team_id, created_by, created_at, updated_at';

/** The condition on `owner` as parameter `$n`, and its value. */
function ownedBy(owner: EndpointOwner, n: number): [string, string] {
  return 'teamId' in owner
    ? [`team_id = $${n}`, owner.teamId]
    : [`team_id IS NULL AND user_id = $${n}`, owner.userId];
}

/**
 * Registers an endpoint with its own secret, unless the owner already has MAX_WEBHOOK_ENDPOINTS
 * (`'limit_reached'`). Counting and inserting under one lock per owner, so concurrent registrations
 * cannot both slip under the limit. A team's endpoint is registered in the name of app.user_id.
 */
export async function createEndpoint(
  tx: Tx,
  owner: EndpointOwner,
  e: { url: string; events: readonly WebhookEventType[] | null; secret: string },
): Promise<EndpointRow | 'limit_reached'> {
  const [where, ownerId] = ownedBy(owner, 1);
  const lock = 'teamId' in owner ? `webhook-endpoints:team:${ownerId}` : `webhook-endpoints:${ownerId}`;
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lock]);
  const { rows: count } = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM webhook_endpoints WHERE deleted_at IS NULL AND ${where}`,
    [ownerId],
  );
  if (count[0]!.n >= MAX_WEBHOOK_ENDPOINTS) return 'limit_reached';
  const { rows } = await tx.query<EndpointRow>(
    'teamId' in owner
      ? `INSERT INTO webhook_endpoints (team_id, created_by, url, events, secret)
         VALUES ($1, current_app_user(), $2, $3, $4) RETURNING ${ENDPOINT_COLUMNS}`
      : `INSERT INTO webhook_endpoints (user_id, url, events, secret) VALUES ($1, $2, $3, $4)
         RETURNING ${ENDPOINT_COLUMNS}`,
    [ownerId, e.url, e.events, e.secret],
  );
  return rows[0]!;
}

/** A page of the owner's endpoints, newest first; `limit + 1` rows, for toPage. */
export function listEndpoints(
  tx: Tx,
  owner: EndpointOwner,
  page: { after?: PageAfter; limit: number },
): Promise<EndpointRow[]> {
  const [where, ownerId] = ownedBy(owner, 1);
  return newestFirst<EndpointRow>(tx, {
    select: `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints`,
    cursorTable: 'webhook_endpoints',
    where: ['deleted_at IS NULL', where],
    params: [ownerId],
    ...page,
  });
}

/** One of the owner's endpoints, unless deleted. */
export async function getEndpoint(
  tx: Tx,
  owner: EndpointOwner,
  id: string,
): Promise<EndpointRow | undefined> {
  const [where, ownerId] = ownedBy(owner, 2);
  const { rows } = await tx.query<EndpointRow>(
    `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL AND ${where}`,
    [id, ownerId],
  );
  return rows[0];
}

/** Soft-deletes an endpoint (its deliveries stay readable); false when there was none to delete. */
export async function deleteEndpoint(tx: Tx, owner: EndpointOwner, id: string): Promise<boolean> {
  const [where, ownerId] = ownedBy(owner, 2);
  const { rowCount } = await tx.query(
    `UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now()
     WHERE id = $1 AND deleted_at IS NULL AND ${where}`,
    [id, ownerId],
  );
  return (rowCount ?? 0) > 0;
}

/** Gives an endpoint a new secret; the old one keeps signing too for `overlapSeconds`. */
export async function rotateEndpointSecret(
  tx: Tx,
  owner: EndpointOwner,
  id: string,
  overlapSeconds: number,
): Promise<RotatedEndpointRow | undefined> {
  const [where, ownerId] = ownedBy(owner, 4);
  const { rows } = await tx.query<RotatedEndpointRow>(
    `UPDATE webhook_endpoints
     SET previous_secret = secret, previous_expires_at = now() + make_interval(secs => $2),
         secret = $3, updated_at = now()
     WHERE id = $1 AND deleted_at IS NULL AND ${where}
     RETURNING ${ENDPOINT_COLUMNS}, secret, previous_expires_at`,
    [id, overlapSeconds, generateWebhookSecret(), ownerId],
  );
  return rows[0];
}

/**
 * The owner's live endpoints (not deleted, not disabled; a team's only while the team is) that want
 * events of `type`, oldest first.
 */
export async function subscribedEndpoints(
  tx: Tx,
  owner: EndpointOwner,
  type: WebhookEventType,
): Promise<{ id: string; url: string; team_id: string | null }[]> {
  const [where, ownerId] = ownedBy(owner, 2);
  const liveTeam =
    'teamId' in owner
      ? 'AND EXISTS (SELECT 1 FROM teams t WHERE t.id = team_id AND t.deleted_at IS NULL)'
      : '';
  const { rows } = await tx.query<{ id: string; url: string; team_id: string | null }>(
    `SELECT id, url, team_id FROM webhook_endpoints
     WHERE deleted_at IS NULL AND disabled_at IS NULL AND (events IS NULL OR $1 = ANY (events)) AND ${where} ${liveTeam}
     ORDER BY created_at, id`,
    [type, ownerId],
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
