// One implementation of Standard Webhooks v1 for both directions: Replicate's webhooks to Velro are
// verified with it (lib/providers/replicate.ts), Velro's own webhooks are signed with it.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { headerValue } from '../providers/http';

/** Standard Webhooks tolerance: ±5 minutes. */
export const WEBHOOK_TOLERANCE_S = 300;

/** The HMAC key of a `whsec_<base64>` secret (a bare base64 secret is taken as it is). */
function hmacKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

/**
 * Standard Webhooks v1 (HMAC-SHA256) verification over the raw body: `webhook-signature` holds
 * space-separated `v1,<base64>` entries over `${webhook-id}.${webhook-timestamp}.${body}`, keyed by
 * the base64 part of a `whsec_` secret. Constant-time comparison, ±5 min timestamp tolerance.
 */
export function verifyStandardWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  rawBody: Buffer,
  nowSeconds: number,
  toleranceS = WEBHOOK_TOLERANCE_S,
): { ok: true; id: string; timestamp: string } | { ok: false; reason: string } {
  const id = headerValue(headers, 'webhook-id')?.trim();
  const timestamp = headerValue(headers, 'webhook-timestamp')?.trim();
  const signatures = headerValue(headers, 'webhook-signature')?.trim();
  if (!id || !timestamp || !signatures) {
    return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature' };
  }
  if (!/^[^.\s]{1,256}$/.test(id)) return { ok: false, reason: 'malformed webhook-id' };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'webhook-timestamp is not unix seconds' };
  const age = nowSeconds - Number(timestamp);
  if (Math.abs(age) > toleranceS) {
    return { ok: false, reason: `webhook-timestamp is ${age} s off (tolerance ${toleranceS} s)` };
  }
  const expected = createHmac('sha256', hmacKey(secret))
    .update(`${id}.${timestamp}.`)
    .update(rawBody)
    .digest();
  const matches = signatures.split(' ').some((entry) => {
    const [version, sig] = entry.split(',', 2);
    if (version !== 'v1' || !sig) return false;
    const given = Buffer.from(sig, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches) return { ok: false, reason: 'no v1 signature matches' };
  return { ok: true, id, timestamp };
}

/** A Standard Webhooks signature header value for a message (the fakes and Velro's own webhooks). */
export function signStandardWebhook(secret: string, id: string, timestamp: number, body: string | Buffer) {
  const mac = createHmac('sha256', hmacKey(secret))
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest('base64');
  return `v1,${mac}`;
}

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
