import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hashApiKey, looksLikeApiKey } from '../../lib/auth/api-keys';
import { ApiError } from '../errors';

export interface Caller {
  id: string;
  role: 'user' | 'admin';
  apiKeyId: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null;
  }
  interface FastifyInstance {
    /** Resolves the request's credentials into `req.caller`, or throws 401. */
    authenticate(req: FastifyRequest): Promise<void>;
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

/** `Authorization: Bearer vk_…` on every route not marked public. */
export default fp(
  async function auth(app: FastifyInstance) {
    app.decorateRequest('caller', null);
    app.decorate('authenticate', async (req: FastifyRequest) => {
      const header = req.headers.authorization;
      if (!header) throw unauthorized('Send `Authorization: Bearer <API key>`.');
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (!match) throw unauthorized('The Authorization header must be `Bearer <API key>`.');
      const token = match[1]!;
      if (!looksLikeApiKey(token)) throw unauthorized('That is not a Velro API key.');
      const { rows } = await app.db.query<{ user_id: string; role: 'user' | 'admin'; api_key_id: string }>(
        'SELECT user_id, role, api_key_id FROM auth_api_key($1)',
        [hashApiKey(token)],
      );
      const row = rows[0];
      if (!row) throw unauthorized('Unknown or revoked API key.');
      req.caller = { id: row.user_id, role: row.role, apiKeyId: row.api_key_id };
    });
    app.addHook('onRequest', async (req) => {
      // No route matched: let the 404 handler answer.
      if (req.routeOptions.config?.public || !req.routeOptions.url) return;
      await app.authenticate(req);
    });
  },
  { name: 'auth', dependencies: ['services'] },
);
