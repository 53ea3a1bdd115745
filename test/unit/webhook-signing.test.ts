import { describe, expect, it } from 'vitest';
import {
  generateWebhookSecret,
  secretsInForce,
  verifyStandardWebhook,
  webhookHeaders,
  type SigningSecrets,
} from '../../lib/webhooks/signing';

// The Standard Webhooks spec's published test vector (shared/reference/providers.md §5).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

const only = (secret: string): SigningSecrets => ({ secret, previousSecret: null, previousExpiresAt: null });

describe('signing outgoing webhooks (Standard Webhooks v1)', () => {
  it('reproduces the spec test vector', () => {
    const headers = webhookHeaders(only(VECTOR.secret), VECTOR.id, VECTOR.body, VECTOR.timestamp * 1000);
    expect(headers).toEqual({
      'webhook-id': VECTOR.id,
      'webhook-timestamp': String(VECTOR.timestamp),
      'webhook-signature': VECTOR.signature,
    });
    expect(verifyStandardWebhook(VECTOR.secret, headers, Buffer.from(VECTOR.body), VECTOR.timestamp).ok).toBe(
      true,
    );
  });

  it('uses the timestamp of the attempt, in whole seconds', () => {
    const headers = webhookHeaders(only(VECTOR.secret), VECTOR.id, VECTOR.body, 1614265330_999);
    expect(headers['webhook-timestamp']).toBe('1614265330');
    expect(headers['webhook-signature']).toBe(VECTOR.signature);
  });

  it('makes secrets of 32 random bytes in the whsec_ format', () => {
    const a = generateWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(Buffer.from(a.slice('whsec_'.length), 'base64')).toHaveLength(32);
    expect(generateWebhookSecret()).not.toBe(a);
  });

  describe('after a rotation', () => {
    const previous = generateWebhookSecret();
    const current = generateWebhookSecret();
    const rotatedAt = Date.UTC(2026, 10, 25, 12);
    const secrets: SigningSecrets = {
      secret: current,
      previousSecret: previous,
      previousExpiresAt: new Date(rotatedAt + 24 * 3600 * 1000),
    };
    const body = '{"id":"e1","type":"generation.succeeded"}';

    function verifies(secret: string, at: number): boolean {
      const headers = webhookHeaders(secrets, 'e1', body, at);
      return verifyStandardWebhook(secret, headers, Buffer.from(body), Math.floor(at / 1000)).ok;
    }

    it('signs with both secrets during the overlap, space-separated: either one verifies', () => {
      const at = rotatedAt + 3600 * 1000;
      const signature = webhookHeaders(secrets, 'e1', body, at)['webhook-signature'];
      expect(signature.split(' ')).toHaveLength(2);
      expect(signature.split(' ').every((s) => s.startsWith('v1,'))).toBe(true);
      expect(secretsInForce(secrets, at)).toEqual([current, previous]);
      expect(verifies(current, at)).toBe(true);
      expect(verifies(previous, at)).toBe(true);
      expect(verifies(generateWebhookSecret(), at)).toBe(false);
    });

    it('stops signing with the old secret once the overlap ends', () => {
      const at = rotatedAt + 24 * 3600 * 1000;
      expect(webhookHeaders(secrets, 'e1', body, at)['webhook-signature'].split(' ')).toHaveLength(1);
      expect(verifies(current, at)).toBe(true);
      expect(verifies(previous, at)).toBe(false);
    });
  });
});
