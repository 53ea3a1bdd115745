import type { Tx } from '../db/pool';
import { generateWebhookSecret, type SigningSecrets } from './signing';

interface SecretRow {
  secret: string;
  previous_secret: string | null;
  previous_expires_at: Date | null;
  created_at: Date;
  rotated_at: Date | null;
}

/** The account's own signing secret: it signs the deliveries to a generation's webhookUrl. */
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
