import type { Tx } from '../db/pool';
import { derivedUuid } from '../ledger/ids';
import { generateWebhookSecret, type SigningSecrets } from './signing';

/** Every event type a webhook can carry; an endpoint may subscribe to some of them. */
export const WEBHOOK_EVENT_TYPES = [
  'generation.succeeded',
  'generation.failed',
  'generation.canceled',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Endpoints a user may register. */
export const MAX_WEBHOOK_ENDPOINTS = 20;

/** The event a generation's end produces: one per (generation, type), so its id is derived. */
export function generationEventId(generationId: string, type: WebhookEventType): string {
  return derivedUuid(`velro:webhook-event:${generationId}:${type}`);
}

/** One delivery per (event, target); `null` is the generation's own webhookUrl. */
export function deliveryId(eventId: string, endpointId: string | null): string {
  return derivedUuid(`velro:webhook-delivery:${eventId}:${endpointId ?? 'generation-url'}`);
}

interface SecretRow {
  secret: string;
  previous_secret: string | null;
  previous_expires_at: Date | null;
  created_at: Date;
  rotated_at: Date | null;
}

export interface AccountSecret extends SigningSecrets {
  createdAt: Date;
  rotatedAt: Date | null;
}

const toSecret = (r: SecretRow): AccountSecret => ({
  secret: r.secret,
  previousSecret: r.previous_secret,
  previousExpiresAt: r.previous_expires_at,
  createdAt: r.created_at,
  rotatedAt: r.rotated_at,
});

/**
 * The account's default signing secret (per-generation webhookUrl deliveries), created on first use
 * by whichever comes first: GET /v1/webhooks/secret or the first delivery. Needs `app.user_id`.
 */
export async function ensureAccountSecret(tx: Tx, userId: string): Promise<AccountSecret> {
  await tx.query(
    'INSERT INTO webhook_secrets (user_id, secret) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING',
    [userId, generateWebhookSecret()],
  );
  const { rows } = await tx.query<SecretRow>(
    `SELECT secret, previous_secret, previous_expires_at, created_at, rotated_at
     FROM webhook_secrets WHERE user_id = $1`,
    [userId],
  );
  return toSecret(rows[0]!);
}

/** Replaces the account secret; the old one keeps signing too for `overlapSeconds`. */
export async function rotateAccountSecret(
  tx: Tx,
  userId: string,
  overlapSeconds: number,
): Promise<AccountSecret> {
  await ensureAccountSecret(tx, userId);
  const { rows } = await tx.query<SecretRow>(
    `UPDATE webhook_secrets
     SET previous_secret = secret, previous_expires_at = now() + make_interval(secs => $2),
         secret = $3, rotated_at = now()
     WHERE user_id = $1
     RETURNING secret, previous_secret, previous_expires_at, created_at, rotated_at`,
    [userId, overlapSeconds, generateWebhookSecret()],
  );
  return toSecret(rows[0]!);
}
