import { describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey, looksLikeApiKey } from '../../lib/auth/api-keys';
import { checkAssetSignature, signAssetPath } from '../../lib/auth/signed-urls';
import { transferId } from '../../lib/ledger/ids';

describe('transfer ids', () => {
  it('are stable per generation and step, distinct across steps, and valid uuids', () => {
    const g = '7d3a3c2e-8b1f-4c1e-9a55-0e1f2a3b4c5d';
    expect(transferId(g, 'reserve')).toBe(transferId(g, 'reserve'));
    expect(new Set([transferId(g, 'reserve'), transferId(g, 'commit'), transferId(g, 'release')]).size).toBe(
      3,
    );
    expect(transferId(g, 'commit')).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});

describe('API keys', () => {
  it('are vk_ + 32 random bytes, hashed with sha256, shown once', () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(a.key).toMatch(/^vk_[A-Za-z0-9_-]{43}$/);
    expect(a.key).not.toBe(b.key);
    expect(a.hash.equals(hashApiKey(a.key))).toBe(true);
    expect(a.prefix).toBe(a.key.slice(0, 10));
    expect(looksLikeApiKey(a.key)).toBe(true);
    expect(looksLikeApiKey('sk_live_123')).toBe(false);
  });
});

describe('signed asset URLs', () => {
  const key = Buffer.alloc(32, 1);
  const id = '0b8e1f7a-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
  const parse = (p: string) => {
    const url = new URL(p, 'http://x');
    return {
      expires: Number(url.searchParams.get('expires')),
      signature: url.searchParams.get('signature')!,
    };
  };

  it('verify until they expire', () => {
    const now = Date.UTC(2026, 0, 1);
    const { expires, signature } = parse(signAssetPath(key, id, 60, now));
    expect(checkAssetSignature(key, id, expires, signature, now + 59_000)).toBe('valid');
    expect(checkAssetSignature(key, id, expires, signature, now + 61_000)).toBe('expired');
  });

  it('refuse tampering with the id, the expiry, the signature or the key', () => {
    const { expires, signature } = parse(signAssetPath(key, id, 60));
    expect(checkAssetSignature(key, id.replace('0b8e', '0b8f'), expires, signature)).toBe('invalid');
    expect(checkAssetSignature(key, id, expires + 3600, signature)).toBe('invalid');
    expect(
      checkAssetSignature(key, id, expires, signature.slice(0, -1) + (signature.endsWith('A') ? 'B' : 'A')),
    ).toBe('invalid');
    expect(checkAssetSignature(Buffer.alloc(32, 2), id, expires, signature)).toBe('invalid');
    expect(checkAssetSignature(key, id, expires, '')).toBe('invalid');
  });
});
