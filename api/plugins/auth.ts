import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { LastUsedBatcher } from '../../lib/api-keys/last-used';
import { apiKeyOwner } from '../../lib/api-keys/store';
import { hashApiKey, looksLikeApiKey } from '../../lib/auth/api-keys';
import { CredentialCache } from '../../lib/auth/credential-cache';
import { jwtKey, signJwt, verifyJwt, type Role } from '../../lib/auth/jwt';
import { RevocationFeed } from '../../lib/auth/revocation-feed';
import { dedicatedClient } from '../../lib/db/pool';
import { userRole } from '../../lib/users/store';
import { ApiError } from '../errors';
import { ipKey, rateLimited } from './security';

export interface Caller {
  id: string;
  role: Role;
  /** The API key the request came with; null when it came with a login token (JWT). */
  apiKeyId: string | null;
  /**
   * A team key's team: the caller is then the key's bot user (a member of that team), and what it
   * makes is the team's unless the request names another team. Null for personal keys and tokens.
   */
  teamId: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null;
  }
  interface FastifyInstance {
    /** Resolves the request's credentials into `req.caller`, or throws 401. */
    authenticate(req: FastifyRequest): Promise<void>;
    /** A login token (JWT) for `user`, valid for JWT_TTL_SECONDS. */
    issueToken(user: { id: string; role: Role }): { token: string; expiresAt: Date };
    credentials: Credentials;
  }
  interface FastifyContextConfig {
    /** A route anyone may call (health, docs, signed asset URLs...). Everything else needs a caller. */
    public?: boolean;
  }
}

/** The authenticated caller; a route that runs without one is a bug, so say so loudly. */
export function callerOf(req: FastifyRequest): Caller {
  if (!req.caller) throw new ApiError(401, 'unauthorized', 'Authentication required.');
  return req.caller;
}

/** The credential cache, for the routes that change what it holds (revocations) or show last use. */
export interface Credentials {
  /** Evicts a revoked key at once (the database's notification follows, for the other processes). */
  forgetApiKey(apiKeyId: string): void;
  /** Writes the keys' last use noted so far (before a list shows lastUsedAt). */
  flushLastUsed(): Promise<void>;
  /** Whether the cache is in use (its revocation feed connected). */
  readonly cached: boolean;
}

/** Entries the credential cache keeps at most, and how long at most (revocations evict at once). */
const CACHE_MAX_ENTRIES = 10_000;
const CACHE_TTL_MS = 60_000;
/** How often the keys' last use is written. */
const LAST_USED_FLUSH_MS = 30_000;

const unauthorized = (detail: string) =>
  new ApiError(401, 'unauthorized', detail, { headers: { 'www-authenticate': 'Bearer realm="velro"' } });

const TOKEN_PROBLEMS = {
  malformed: 'That is neither a Velro API key nor a Velro login token.',
  bad_signature: 'Invalid login token.',
  bad_claims: 'Invalid login token.',
  expired: 'This login token has expired; log in again.',
} as const;

/**
 * `Authorization: Bearer <credential>` on every route not marked public, where the credential is an
 * API key (`vk_…`, looked up by its hash) or a login token (HS256 JWT from /v1/auth/login). Either
 * way the caller's role is the database's: read once, then cached (CredentialCache) only while the
 * database's revocation feed is connected, which evicts on every revocation, deletion or role change
 * whoever makes it; this process's own revocations evict before they are answered. A key's last use
 * is written in batches (LastUsedBatcher), not per request.
 * Failed credentials count against a per-address limit: past it, 429 before the credential is
 * looked up. The count is in Postgres (security's store), shared by every replica.
 */
export default fp(
  async function auth(app: FastifyInstance) {
    const key = await jwtKey(app.config);
    const ttl = app.config.JWT_TTL_SECONDS;
    const failures = app.createRateLimit({
      max: app.config.RATE_LIMIT_AUTH_MAX,
      timeWindow: app.config.RATE_LIMIT_WINDOW_SECONDS * 1000,
      keyGenerator: (req) => `auth-failure:${ipKey(req)}`,
    });

    const cache = new CredentialCache({ maxEntries: CACHE_MAX_ENTRIES, ttlMs: CACHE_TTL_MS });
    const feed = new RevocationFeed({ connect: () => dedicatedClient(app.db), cache, log: app.log });
    const lastUsed = new LastUsedBatcher(app.log);
    feed.start();
    const flushing = setInterval(() => void lastUsed.flush(app.db), LAST_USED_FLUSH_MS);
    flushing.unref();
    app.addHook('onClose', async () => {
      clearInterval(flushing);
      await feed.close();
      await lastUsed.flush(app.db);
    });
    app.decorate('credentials', {
      forgetApiKey: (id: string) => cache.forgetApiKey(id),
      flushLastUsed: () => lastUsed.flush(app.db),
      get cached() {
        return cache.isLive;
      },
    } satisfies Credentials);
    // A DELETE may revoke keys in SQL this process does not see (a team's deletion revokes its keys):
    // its answer waits until the feed has applied what the database notified meanwhile.
    app.addHook('onSend', async (req, _reply, payload) => {
      if (req.method === 'DELETE') await feed.barrier();
      return payload;
    });

    app.decorateRequest('caller', null);
    app.decorate('issueToken', (user: { id: string; role: Role }) =>
      signJwt(key, { sub: user.id, role: user.role }, ttl),
    );

    // Past the address's failed-credential limit, a credential that would be looked up in the
    // database gets 429 instead. A cached one was proven already: no count is read for it, so a
    // read costs no extra round trip.
    async function refuseIfBlocked(req: FastifyRequest) {
      const before = await failures(req, { increment: false });
      if (!before.isAllowed && before.isExceeded) {
        throw rateLimited(`${before.ttlInSeconds} seconds`, before.ttlInSeconds);
      }
    }

    async function resolve(req: FastifyRequest): Promise<Caller> {
      const header = req.headers.authorization;
      if (!header) throw unauthorized('Send `Authorization: Bearer <API key or login token>`.');
      const match = /^Bearer +(\S+)$/i.exec(header);
      if (!match) throw unauthorized('The Authorization header must be `Bearer <API key or login token>`.');
      const credential = match[1]!;

      if (credential.startsWith('vk_')) {
        if (!looksLikeApiKey(credential)) throw unauthorized('That is not a Velro API key.');
        const hash = hashApiKey(credential);
        const cacheKey = `key:${hash.toString('hex')}`;
        let owner = cache.get(cacheKey);
        if (!owner) {
          await refuseIfBlocked(req);
          const token = cache.begin();
          const found = await apiKeyOwner(app.db, hash);
          if (!found) throw unauthorized('Unknown or revoked API key.');
          owner = found;
          cache.set(token, cacheKey, owner);
        }
        lastUsed.note(hash);
        return { id: owner.userId, role: owner.role, apiKeyId: owner.apiKeyId, teamId: owner.teamId };
      }

      const check = verifyJwt(key, credential);
      if (!check.ok) throw unauthorized(TOKEN_PROBLEMS[check.reason]);
      const cacheKey = `user:${check.claims.sub}`;
      let user = cache.get(cacheKey);
      if (!user) {
        await refuseIfBlocked(req);
        const token = cache.begin();
        const found = await userRole(app.db, check.claims.sub);
        if (!found) throw unauthorized('This account no longer exists.');
        user = { ...found, apiKeyId: null, teamId: null };
        cache.set(token, cacheKey, user);
      }
      return { id: user.userId, role: user.role, apiKeyId: null, teamId: null };
    }

    app.decorate('authenticate', async (req: FastifyRequest) => {
      const presented = req.headers.authorization !== undefined;
      try {
        req.caller = await resolve(req);
      } catch (err) {
        if (presented && err instanceof ApiError && err.status === 401) {
          const after = await failures(req);
          if (!after.isAllowed && after.isExceeded) {
            throw rateLimited(`${after.ttlInSeconds} seconds`, after.ttlInSeconds);
          }
        }
        throw err;
      }
    });

    app.addHook('onRequest', async (req) => {
      // No route matched: let the 404 handler answer.
      if (req.routeOptions.config?.public || !req.routeOptions.url) return;
      await app.authenticate(req);
    });
  },
  { name: 'auth', dependencies: ['dependencies', 'security'] },
);
