import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { apiKeyOwner } from '../../lib/api-keys/store';
import { looksLikeApiKey } from '../../lib/auth/api-keys';
import { jwtKey, signJwt, verifyJwt, type Role } from '../../lib/auth/jwt';
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
 * way the caller's role is read from the database, so revocation and role changes apply at once.
 * Failed credentials count against a per-address limit: past it, 429 without touching the database.
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

    app.decorateRequest('caller', null);
    app.decorate('issueToken', (user: { id: string; role: Role }) =>
      signJwt(key, { sub: user.id, role: user.role }, ttl),
    );

    async function resolve(req: FastifyRequest): Promise<Caller> {
      const header = req.headers.authorization;
      if (!header) throw unauthorized('Send `Authorization: Bearer <API key or login token>`.');
      const match = /^Bearer +(\S+)$/i.exec(header);
      if (!match) throw unauthorized('The Authorization header must be `Bearer <API key or login token>`.');
      const credential = match[1]!;

      if (credential.startsWith('vk_')) {
        if (!looksLikeApiKey(credential)) throw unauthorized('That is not a Velro API key.');
        const owner = await apiKeyOwner(app.db, credential);
        if (!owner) throw unauthorized('Unknown or revoked API key.');
        return { id: owner.userId, role: owner.role, apiKeyId: owner.apiKeyId, teamId: owner.teamId };
      }

      const check = verifyJwt(key, credential);
      if (!check.ok) throw unauthorized(TOKEN_PROBLEMS[check.reason]);
      const user = await userRole(app.db, check.claims.sub);
      if (!user) throw unauthorized('This account no longer exists.');
      return { id: user.userId, role: user.role, apiKeyId: null, teamId: null };
    }

    app.decorate('authenticate', async (req: FastifyRequest) => {
      const presented = req.headers.authorization !== undefined;
      if (presented) {
        const before = await failures(req, { increment: false });
        if (!before.isAllowed && before.isExceeded) {
          throw rateLimited(`${before.ttlInSeconds} seconds`, before.ttlInSeconds);
        }
      }
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
