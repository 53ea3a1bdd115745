import type { Tx } from '../db/pool';
import type { GenerationStatus } from '../generations/status';
import { derivedUuid } from '../ledger/ids';

/** Every event type a webhook can carry; an endpoint may subscribe to some of them. */
export const WEBHOOK_EVENT_TYPES = [
  'generation.succeeded',
  'generation.failed',
  'generation.canceled',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** The event a generation's end produces: one per (generation, type), so its id is derived. */
export function generationEventId(generationId: string, type: WebhookEventType): string {
  return derivedUuid(`velro:webhook-event:${generationId}:${type}`);
}

/** One delivery per (event, target); `null` is the generation's own webhookUrl. */
export function deliveryId(eventId: string, endpointId: string | null): string {
  return derivedUuid(`velro:webhook-delivery:${eventId}:${endpointId ?? 'generation-url'}`);
}

/** The status and team of one of the caller's generations (RLS), or undefined when it sees none. */
export async function generationStatus(
  tx: Tx,
  generationId: string,
): Promise<{ status: GenerationStatus; teamId: string | null } | undefined> {
  const { rows } = await tx.query<{ status: GenerationStatus; team_id: string | null }>(
    'SELECT status, team_id FROM generations WHERE id = $1',
    [generationId],
  );
  return rows[0] && { status: rows[0].status, teamId: rows[0].team_id };
}

/**
 * A team generation of `userId` (on the system login: its creator may have left the team, and so
 * no longer see it): its status, team, and whether the creator is still a member of the live team.
 */
export async function teamGenerationOf(
  tx: Tx,
  generationId: string,
  userId: string,
): Promise<{ status: GenerationStatus; teamId: string; creatorIsMember: boolean } | undefined> {
  const { rows } = await tx.query<{ status: GenerationStatus; team_id: string; member: boolean }>(
    `SELECT g.status, g.team_id,
            EXISTS (SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id
                    WHERE m.team_id = g.team_id AND m.user_id = g.user_id AND t.deleted_at IS NULL) AS member
     FROM generations g WHERE g.id = $1 AND g.user_id = $2 AND g.team_id IS NOT NULL`,
    [generationId, userId],
  );
  const row = rows[0];
  return row && { status: row.status, teamId: row.team_id, creatorIsMember: row.member };
}

/** Whether the event is already recorded (a repeated createWebhookEvent). */
export async function eventExists(tx: Tx, eventId: string): Promise<boolean> {
  const known = await tx.query('SELECT 1 FROM webhook_events WHERE id = $1', [eventId]);
  return (known.rowCount ?? 0) > 0;
}

export interface NewEvent {
  id: string;
  userId: string;
  /** A team generation's team. */
  teamId: string | null;
  type: WebhookEventType;
  generationId: string;
  /** The exact bytes every attempt to every target sends. */
  body: string;
  createdAt: Date;
}

/** Where a delivery goes: a registered endpoint (a team's: `teamId`), or (`endpointId` null) the generation's webhookUrl. */
export interface DeliveryTargetSpec {
  endpointId: string | null;
  teamId: string | null;
  url: string;
}

/** Records an event and one pending delivery per target. */
export async function recordEvent(tx: Tx, event: NewEvent, targets: DeliveryTargetSpec[]): Promise<void> {
  await tx.query(
    `INSERT INTO webhook_events (id, user_id, team_id, type, generation_id, body, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
    [event.id, event.userId, event.teamId, event.type, event.generationId, event.body, event.createdAt],
  );
  for (const target of targets) {
    await tx.query(
      `INSERT INTO webhook_deliveries (id, event_id, user_id, team_id, endpoint_id, url)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
      [
        deliveryId(event.id, target.endpointId),
        event.id,
        event.userId,
        target.teamId,
        target.endpointId,
        target.url,
      ],
    );
  }
}

/** The deliveries of an event, in the order they were recorded. */
export async function deliveriesOfEvent(
  tx: Tx,
  eventId: string,
): Promise<{ id: string; endpoint_id: string | null }[]> {
  const { rows } = await tx.query<{ id: string; endpoint_id: string | null }>(
    'SELECT id, endpoint_id FROM webhook_deliveries WHERE event_id = $1 ORDER BY created_at, id',
    [eventId],
  );
  return rows;
}
