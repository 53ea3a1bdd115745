import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { withUserTx } from '../../lib/db/pool';
import { ApiError } from '../errors';
import { callerOf } from './auth';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route honours `Idempotency-Key`. 'converge': a concurrent duplicate runs the handler again,
     * which must converge on the same result (generations derive their id from the key);
     * 'exclusive': a concurrent duplicate is answered 409 until the first one finishes.
     */
    idempotent?: 'converge' | 'exclusive';
  }
  interface FastifyRequest {
    /** Set when the request carries an Idempotency-Key on an idempotent route. */
    idempotencyKey: string | null;
  }
}

const HEADER = 'idempotency-key';

function requestHash(req: FastifyRequest): string {
  return createHash('sha256')
    .update(
      `${req.method} ${req.routeOptions.url}\n${JSON.stringify(req.params)}\n${JSON.stringify(req.body ?? null)}`,
    )
    .digest('hex');
}

/** Stripe-style idempotency keys on the POSTs that create something. */
export default fp(
  async function idempotency(app: FastifyInstance) {
    app.decorateRequest('idempotencyKey', null);

    app.addHook('preHandler', async (req, reply) => {
      const mode = req.routeOptions.config?.idempotent;
      const raw = req.headers[HEADER];
      if (!mode || raw === undefined) return;
      const key = Array.isArray(raw) ? raw[0]! : raw;
      if (key.length === 0 || key.length > 255 || !/^[\x21-\x7e]+$/.test(key)) {
        throw new ApiError(
          400,
          'invalid_request',
          'Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID v4 is a good choice).',
        );
      }
      const caller = callerOf(req);
      const hash = requestHash(req);
      const stored = await withUserTx(app.db, caller.id, async (tx) => {
        const inserted = await tx.query(
          `INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
           ON CONFLICT (user_id, key) DO NOTHING`,
          [caller.id, key, hash],
        );
        if (inserted.rowCount === 1) return undefined;
        const { rows } = await tx.query<{
          request_hash: string;
          response_status: number | null;
          response_body: string | null;
        }>(
          'SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2',
          [caller.id, key],
        );
        return rows[0];
      });
      req.idempotencyKey = key;
      if (!stored) return; // first use: run, and keep the response (onSend)
      if (stored.request_hash !== hash) {
        throw new ApiError(
          422,
          'idempotency_mismatch',
          'This Idempotency-Key was already used with a different request. Use a new key for a new request.',
        );
      }
      if (stored.response_status !== null) {
        req.idempotencyKey = null; // a replay is not stored again
        return reply
          .status(stored.response_status)
          .header('idempotent-replayed', 'true')
          .type(stored.response_status >= 400 ? 'application/problem+json' : 'application/json')
          .send(stored.response_body);
      }
      if (mode === 'exclusive') {
        req.idempotencyKey = null;
        throw new ApiError(
          409,
          'idempotency_in_progress',
          'A request with this Idempotency-Key is still running.',
          {
            headers: { 'retry-after': '1' },
          },
        );
      }
    });

    app.addHook('onSend', async (req, reply, payload) => {
      const key = req.idempotencyKey;
      if (!key || !req.caller) return payload;
      const status = reply.statusCode;
      await withUserTx(app.db, req.caller.id, (tx) =>
        status >= 500
          ? // A server failure is not an answer worth keeping: let the retry run again.
            tx.query(
              'DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND completed_at IS NULL',
              [req.caller!.id, key],
            )
          : tx.query(
              `UPDATE idempotency_keys SET response_status = $3, response_body = $4, completed_at = now()
               WHERE user_id = $1 AND key = $2 AND completed_at IS NULL`,
              [req.caller!.id, key, status, typeof payload === 'string' ? payload : JSON.stringify(payload)],
            ),
      );
      return payload;
    });
  },
  { name: 'idempotency', dependencies: ['auth'] },
);
