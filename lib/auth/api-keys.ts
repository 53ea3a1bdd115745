import { createHash, randomBytes } from 'node:crypto';

const KEY_PREFIX = 'vk_';

/** A new API key: `vk_` + 32 random bytes, base64url. Only its hash is ever stored. */
export function generateApiKey(): { key: string; prefix: string; hash: Buffer } {
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { key, prefix: key.slice(0, 10), hash: hashApiKey(key) };
}

/** Keys carry 256 bits of entropy, so a fast hash is enough (no password stretching needed). */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith(KEY_PREFIX) && /^vk_[A-Za-z0-9_-]{20,100}$/.test(token);
}
