import { describe, expect, it } from 'vitest';
import { CredentialCache } from '../../lib/auth/credential-cache';

const cred = (n: number, userId = `user-${n}`) => ({
  userId,
  role: 'user' as const,
  apiKeyId: `key-${n}`,
  teamId: null,
});

describe('CredentialCache', () => {
  it('holds nothing until live, and forgets everything when going live or down', () => {
    const cache = new CredentialCache({ maxEntries: 10, ttlMs: 1000 });
    cache.set(cache.begin(), 'a', cred(1));
    expect(cache.get('a')).toBeUndefined();
    cache.setLive(true);
    cache.set(cache.begin(), 'a', cred(1));
    expect(cache.get('a')).toEqual(cred(1));
    cache.setLive(false);
    expect(cache.get('a')).toBeUndefined();
    cache.setLive(true);
    expect(cache.get('a')).toBeUndefined();
  });

  it('does not keep what a read that began before an eviction found', () => {
    const cache = new CredentialCache({ maxEntries: 10, ttlMs: 1000 });
    cache.setLive(true);
    const before = cache.begin();
    cache.forgetApiKey('key-1');
    cache.set(before, 'a', cred(1));
    expect(cache.get('a')).toBeUndefined();
    const beforeLoss = cache.begin();
    cache.setLive(false);
    cache.setLive(true);
    cache.set(beforeLoss, 'a', cred(1));
    expect(cache.get('a')).toBeUndefined();
  });

  it('forgets by key and by user, drops expired entries and the least recently used past its size', () => {
    let now = 0;
    const cache = new CredentialCache({ maxEntries: 2, ttlMs: 1000, now: () => now });
    cache.setLive(true);
    cache.set(cache.begin(), 'a', cred(1, 'u'));
    cache.set(cache.begin(), 'b', cred(2, 'u'));
    cache.forgetUser('u');
    expect([cache.get('a'), cache.get('b')]).toEqual([undefined, undefined]);

    cache.set(cache.begin(), 'a', cred(1));
    cache.set(cache.begin(), 'b', cred(2));
    cache.forgetApiKey('key-1');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toEqual(cred(2));

    cache.set(cache.begin(), 'a', cred(1));
    expect(cache.get('b')).toEqual(cred(2)); // b is now the most recently used
    cache.set(cache.begin(), 'c', cred(3));
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(2);

    now = 1000;
    expect(cache.get('b')).toBeUndefined();
  });
});
