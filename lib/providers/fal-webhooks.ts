// fal's webhook signatures: Ed25519 over request id, user id, timestamp and the body's SHA-256, by any
// key of fal's JWKS (fetched, cached, refetched on an unknown signature). Used by ./fal.ts.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { excerpt, headerValue, providerFetch } from './http';
import { RetryableProviderError, type WebhookRequest, type WebhookVerdict } from './provider';

/** Webhooks older or newer than this are refused (fal's documented tolerance). */
export const FAL_WEBHOOK_TOLERANCE_S = 300;
/** A signature no cached key verifies refetches the keys at most this often (key rotation). */
const JWKS_MIN_REFRESH_MS = 60_000;

export interface FalWebhookVerifierOptions {
  /** Public keys that sign fal's webhooks. */
  jwksUrl: string;
  /** How long fetched webhook keys are trusted (fal allows caching up to 24 h). */
  jwksTtlMs?: number;
  /** Time limit of the JWKS request. */
  timeoutMs: number;
  /** Seconds since the epoch. */
  nowSeconds: () => number;
}

export class FalWebhookVerifier {
  private jwks: { keys: KeyObject[]; fetchedAt: number } | undefined;
  private jwksLoading: Promise<KeyObject[]> | undefined;

  constructor(private readonly opts: FalWebhookVerifierOptions) {}

  async verify(req: WebhookRequest): Promise<WebhookVerdict> {
    const h = (name: string) => headerValue(req.headers, name)?.trim();
    const requestId = h('x-fal-webhook-request-id');
    const userId = h('x-fal-webhook-user-id');
    const timestamp = h('x-fal-webhook-timestamp');
    const signature = h('x-fal-webhook-signature');
    if (!requestId || !userId || !timestamp || !signature) {
      return { ok: false, reason: 'missing X-Fal-Webhook-{Request-Id,User-Id,Timestamp,Signature}' };
    }
    if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'timestamp is not unix seconds' };
    const age = (req.now ?? this.opts.nowSeconds()) - Number(timestamp);
    if (Math.abs(age) > FAL_WEBHOOK_TOLERANCE_S) {
      return { ok: false, reason: `timestamp is ${age} s off (tolerance ${FAL_WEBHOOK_TOLERANCE_S} s)` };
    }
    if (!/^[0-9a-fA-F]{128}$/.test(signature)) {
      return { ok: false, reason: 'signature is not a hex Ed25519 signature' };
    }
    const bodyHash = createHash('sha256').update(req.rawBody).digest('hex');
    const message = Buffer.from(`${requestId}\n${userId}\n${timestamp}\n${bodyHash}`, 'utf8');
    const sig = Buffer.from(signature, 'hex');
    // No key id is sent: any current key may have signed it.
    const matches = (keys: KeyObject[]) => keys.some((key) => verify(null, message, key, sig));
    let valid = matches(await this.keys());
    if (!valid && this.jwks && Date.now() - this.jwks.fetchedAt > JWKS_MIN_REFRESH_MS) {
      valid = matches(await this.keys(true));
    }
    if (!valid) return { ok: false, reason: 'signature does not verify with any fal webhook key' };
    let body: unknown;
    try {
      body = JSON.parse(req.rawBody.toString('utf8'));
    } catch {
      return { ok: false, reason: 'signed body is not JSON' };
    }
    if (!isObject(body) || body.request_id !== requestId) {
      return { ok: false, reason: 'body request_id differs from X-Fal-Webhook-Request-Id' };
    }
    return {
      ok: true,
      requestKey: requestId,
      replayKey: `${requestId}:${timestamp}:${signature.toLowerCase()}`,
    };
  }

  /** fal's webhook public keys, cached for `jwksTtlMs`; one fetch at a time. */
  private async keys(refresh = false): Promise<KeyObject[]> {
    const ttl = this.opts.jwksTtlMs ?? 60 * 60 * 1000;
    if (!refresh && this.jwks && Date.now() - this.jwks.fetchedAt < ttl) return this.jwks.keys;
    this.jwksLoading ??= (async () => {
      try {
        const res = await providerFetch('fal', this.opts.jwksUrl, {
          method: 'GET',
          headers: { accept: 'application/json' },
          // Public keys, no credentials sent: a moved JWKS may be followed.
          redirect: 'follow',
          timeoutMs: this.opts.timeoutMs,
        });
        if (res.status !== 200 || !isObject(res.json) || !Array.isArray(res.json.keys)) {
          throw new RetryableProviderError(
            'provider_unavailable',
            `fal JWKS: HTTP ${res.status}: ${excerpt(res)}`,
          );
        }
        const keys = res.json.keys.flatMap((k: unknown) => {
          if (!isObject(k) || k.kty !== 'OKP' || k.crv !== 'Ed25519' || typeof k.x !== 'string') return [];
          try {
            return [createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x }, format: 'jwk' })];
          } catch {
            return [];
          }
        });
        this.jwks = { keys, fetchedAt: Date.now() };
        return keys;
      } finally {
        this.jwksLoading = undefined;
      }
    })();
    return this.jwksLoading;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
