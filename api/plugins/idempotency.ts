import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { withUserTx, type Db } from '../../lib/db/pool';
import { isDatabaseUnreachable } from '../../lib/db/unreachable';
import {
  claimIdempotencyKey,
  keepIdempotentAnswer,
  releaseIdempotencyKey,
} from '../../lib/idempotency/store';
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
    /**
     * Top-level fields of the route's answer that carry a one-time secret (a new API key, a signing
     * secret). They are never stored: the kept answer has them set to null, so a replay returns null
     * there, with `idempotent-secret-redacted: true`. The client got the secret in the first answer;
     * one that lost it must revoke or rotate. Needs `idempotent`.
     */
    idempotentSecretFields?: readonly string[];
  }
  interface FastifyRequest {
    /** Set when the request carries an Idempotency-Key on an idempotent route. */
    idempotencyKey: string | null;
  }
}

const HEADER = 'idempotency-key';

/**
 * `body` (a JSON answer) with its top-level `fields` set to null, and whether it held any of them.
 * A body that is not JSON comes back as null: with secrets at stake, better nothing than the text.
 */
export function withoutSecrets(
  body: string,
  fields: readonly string[],
): { body: string | null; redacted: boolean } {
  if (fields.length === 0) return { body, redacted: false };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { body: null, redacted: false };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    return { body, redacted: false };
  const answer = parsed as Record<string, unknown>;
  let redacted = false;
  for (const field of fields) {
    if (Object.hasOwn(answer, field)) {
      answer[field] = null;
      redacted = true;
    }
  }
  return { body: redacted ? JSON.stringify(answer) : body, redacted };
}

function payloadText(payload: unknown): string {
  if (typeof payload === 'string') return payload;
  if (Buffer.isBuffer(payload)) return payload.toString('utf8');
  return JSON.stringify(payload);
}

function requestHash(req: FastifyRequest): string {
  return createHash('sha256')
    .update(
      `${req.method} ${req.routeOptions.url}\n${JSON.stringify(req.params)}\n${JSON.stringify(req.body ?? null)}`,
    )
    .digest('hex');
}

/** Keeps the answer for the key's replays, or releases the key after a server failure. */
function rememberAnswer(db: Db, userId: string, key: string, status: number, kept: string | null) {
  return withUserTx(db, userId, (tx) =>
    status >= 500
      ? // A server failure is not an answer worth keeping: let the retry run again.
        releaseIdempotencyKey(tx, userId, key)
      : keepIdempotentAnswer(tx, userId, key, status, kept),
  );
}

/** Stripe-style idempotency keys on the POSTs that create something. */
export default fp(
  async function idempotency(app: FastifyInstance) {
    app.decorateRequest('idempotencyKey', null);

    // Mistakes in a route's declaration fail at startup, not with a stored answer in production.
    app.addHook('onRoute', (route) => {
      const where = `${String(route.method)} ${route.url}`;
      if (route.config?.idempotentSecretFields?.length && !route.config.idempotent) {
        throw new Error(`${where}: idempotentSecretFields needs idempotent`);
      }
      const methods = [route.method].flat();
      if (route.config?.idempotent && methods.some((m) => m === 'GET' || m === 'HEAD')) {
        throw new Error(`${where}: only a request that changes something can be idempotent`);
      }
    });

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
      const stored = await withUserTx(app.db, caller.id, (tx) =>
        claimIdempotencyKey(tx, caller.id, key, hash),
      );
      if (!stored) {
        req.idempotencyKey = key; // first use: run, and keep the response (onSend)
        return;
      }
      // From here on this request does not own the key: whatever it answers is not kept, so that a
      // refusal cannot take the place of the answer of a first request still running.
      if (stored.requestHash !== hash) {
        throw new ApiError(
          422,
          'idempotency_mismatch',
          'This Idempotency-Key was already used with a different request. Use a new key for a new request.',
        );
      }
      if (stored.responseStatus !== null) {
        const secretFields = req.routeOptions.config?.idempotentSecretFields ?? [];
        // Kept without its secrets already; cleaned again so no replay can carry one.
        const replay =
          stored.responseBody === null
            ? { body: null, redacted: false }
            : withoutSecrets(stored.responseBody, secretFields);
        if (replay.redacted) reply.header('idempotent-secret-redacted', 'true');
        return reply
          .status(stored.responseStatus)
          .header('idempotent-replayed', 'true')
          .type(stored.responseStatus >= 400 ? 'application/problem+json' : 'application/json')
          .send(replay.body ?? '');
      }
      if (mode === 'exclusive') {
        throw new ApiError(
          409,
          'idempotency_in_progress',
          'A request with this Idempotency-Key is still running.',
          {
            headers: { 'retry-after': '1' },
          },
        );
      }
      // 'converge': run again; whichever run answers first is kept.
      req.idempotencyKey = key;
    });

    app.addHook('onSend', async (req, reply, payload) => {
      const key = req.idempotencyKey;
      if (!key || !req.caller) return payload;
      const status = reply.statusCode;
      const secretFields = req.routeOptions.config?.idempotentSecretFields ?? [];
      const kept = status >= 500 ? null : withoutSecrets(payloadText(payload), secretFields).body;
      try {
        await rememberAnswer(app.db, req.caller.id, key, status, kept);
      } catch (err) {
        if (!isDatabaseUnreachable(err)) throw err;
        // Postgres went away after the work was done: the answer still goes out (turning it into an
        // error now would hide what happened). A retry with the key finds it claimed but unanswered,
        // as after a crash at this point: a converging route runs again and meets the same result.
        req.log.warn({ err, status }, 'the idempotent answer could not be kept');
      }
      return payload;
    });
  },
  { name: 'idempotency', dependencies: ['auth'] },
);
