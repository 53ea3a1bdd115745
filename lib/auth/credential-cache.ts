import type { Role } from './jwt';

/** Who a credential is, as the database last said: what the API's authentication answers. */
export interface CachedCredential {
  userId: string;
  role: Role;
  apiKeyId: string | null;
  teamId: string | null;
}

export interface CredentialCacheOptions {
  /** Entries kept at most; past it the least recently used goes. */
  maxEntries: number;
  /** A safety net only: revocations evict at once (RevocationFeed); an entry is dropped after this anyway. */
  ttlMs: number;
  now?: () => number;
}

interface Entry {
  value: CachedCredential;
  expiresAt: number;
}

/**
 * API keys (by hash) and login tokens' users (by id), so that authentication does not ask the
 * database on every request. It is used only while `live`: while the feed of revocations from the
 * database is connected. Going live or down clears it, and so does a lost feed, so nothing it holds
 * can be older than the last revocation it was told of.
 *
 * A read that began before an eviction must not put back what the eviction removed: `begin()` hands
 * out the cache's generation, every eviction moves it on, and `set` keeps a value only when the
 * generation is still the one its read began in.
 */
export class CredentialCache {
  private readonly entries = new Map<string, Entry>();
  private generation = 0;
  private live = false;
  private readonly now: () => number;

  constructor(private readonly opts: CredentialCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether entries are used (the revocation feed is connected). */
  get isLive(): boolean {
    return this.live;
  }

  /** The feed connected (true) or was lost (false): either way everything held so far goes. */
  setLive(live: boolean): void {
    this.live = live;
    this.clear();
  }

  /** A token for `set`: taken before the database read whose answer `set` would keep. */
  begin(): number {
    return this.live ? this.generation : -1;
  }

  get(key: string): CachedCredential | undefined {
    if (!this.live) return undefined;
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) return undefined;
    this.entries.set(key, entry); // most recently used last
    return entry.value;
  }

  set(token: number, key: string, value: CachedCredential): void {
    if (!this.live || token !== this.generation) return;
    this.entries.delete(key);
    while (this.entries.size >= this.opts.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, expiresAt: this.now() + this.opts.ttlMs });
  }

  /** Drops every entry of this API key. */
  forgetApiKey(apiKeyId: string): void {
    this.forget((v) => v.apiKeyId === apiKeyId);
  }

  /** Drops every entry of this user (its keys and its login tokens' lookups). */
  forgetUser(userId: string): void {
    this.forget((v) => v.userId === userId);
  }

  clear(): void {
    this.generation++;
    this.entries.clear();
  }

  private forget(match: (v: CachedCredential) => boolean): void {
    this.generation++;
    for (const [key, entry] of this.entries) if (match(entry.value)) this.entries.delete(key);
  }
}
