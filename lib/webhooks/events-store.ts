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

/** The status of one of the caller's generations (RLS), or undefined when there is none. */
export async function generationStatus(tx: Tx, generationId: string): Promise<GenerationStatus | undefined> {
  const { rows } = await tx.query<{ status: GenerationStatus }>(
    'SELECT status FROM generations WHERE id = $1',
    [generationId],
  );
  return rows[0]?.status;
}

/** Whether the event is already recorded (a repeated createWebhookEvent). */
export async function eventExists(tx: Tx, eventId: string): Promise<boolean> {
  const known = await tx.query('SELECT 1 FROM webhook_events WHERE id = $1', [eventId]);
  return (known.rowCount ?? 0) > 0;
}

export interface NewEvent {
  id: string;
  userId: string;
  type: WebhookEventType;
  generationId: string;
  /** The exact bytes every attempt to every target sends. */
  body: string;
  createdAt: Date;
}

/** Records an event and one pending delivery per target (`endpointId` null: the generation's webhookUrl). */
export async function recordEvent(
  tx: Tx,
  event: NewEvent,
  targets: { endpointId: string | null; url: string }[],
): Promise<void> {
  await tx.query(
    `INSERT INTO webhook_events (id, user_id, type, generation_id, body, created_at)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
    [event.id, event.userId, event.type, event.generationId, event.body, event.createdAt],
  );
  for (const target of targets) {
    await tx.query(
      `INSERT INTO webhook_deliveries (id, event_id, user_id, endpoint_id, url)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
      [deliveryId(event.id, target.endpointId), event.id, event.userId, target.endpointId, target.url],
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
