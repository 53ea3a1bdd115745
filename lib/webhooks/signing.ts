import { randomBytes } from 'node:crypto';
// One implementation of Standard Webhooks v1 for both directions: Replicate's webhooks to Velro are
// verified with it, Velro's own webhooks are signed with it.
import { signStandardWebhook, verifyStandardWebhook } from '../providers/replicate';

export { signStandardWebhook, verifyStandardWebhook };

/** A new signing secret: `whsec_` + base64 of 32 random bytes (the spec asks for 24 to 64). */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The secrets a delivery is signed with: the current one, and during a rotation's overlap the one it replaced. */
export interface SigningSecrets {
  secret: string;
  previousSecret: string | null;
  previousExpiresAt: Date | null;
}

/** The secrets in force at `now`: the previous one only until its overlap ends. */
export function secretsInForce(s: SigningSecrets, now: number): string[] {
  const overlapping = s.previousSecret && s.previousExpiresAt && s.previousExpiresAt.getTime() > now;
  return overlapping ? [s.secret, s.previousSecret!] : [s.secret];
}

/**
 * The Standard Webhooks headers of one attempt: `webhook-id` (the event id, the same on every retry),
 * `webhook-timestamp` (this attempt, unix seconds) and `webhook-signature`, one space-separated
 * `v1,<base64>` entry per secret in force, so a receiver holding either secret verifies it.
 */
export function webhookHeaders(
  secrets: SigningSecrets,
  id: string,
  body: string,
  now: number = Date.now(),
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const timestamp = Math.floor(now / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secretsInForce(secrets, now)
      .map((secret) => signStandardWebhook(secret, id, timestamp, body))
      .join(' '),
  };
}
