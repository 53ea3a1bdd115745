import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createdApiKeyExample, examples } from '../schemas/examples';
import { generateApiKey } from '../../lib/auth/api-keys';
import { withUserTx } from '../../lib/db/pool';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import {
  errorResponses,
  idempotencyKeyHeaders,
  idParams,
  paginationQuery,
  problemSchema,
  afterCursor,
  toPage,
} from '../schemas/common';

/** Active keys a user may hold at once. */
export const MAX_ACTIVE_API_KEYS = 100;

const apiKeySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    prefix: z.string().describe('The first characters of the key, to tell keys apart'),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable().describe('Updated at most once a minute'),
  })
  .meta({ id: 'ApiKey', examples: [examples.apiKey] });

const createdKeySchema = apiKeySchema
  .extend({
    key: z
      .string()
      .nullable()
      .describe(
        'The key itself: shown this once, only its hash is stored. null when the answer is a replay ' +
          '(`Idempotency-Key`, `idempotent-secret-redacted: true`)',
      ),
  })
  .meta({ id: 'CreatedApiKey', examples: [createdApiKeyExample] });

const createBody = z
  .strictObject({ name: z.string().trim().min(1).max(100) })
  .meta({ examples: [examples.apiKeyRequest] });

interface KeyRow {
  id: string;
  name: string;
  prefix: string;
  created_at: Date;
  last_used_at: Date | null;
}

const toView = (k: KeyRow) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  createdAt: k.created_at.toISOString(),
  lastUsedAt: k.last_used_at?.toISOString() ?? null,
});

const apiKeys: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/api-keys',
    {
      config: { idempotent: 'exclusive', idempotentSecretFields: ['key'] },
      schema: {
        tags: ['account'],
        summary: 'Create an API key',
        description:
          'The answer carries the key itself, once: store it now. Keys do not expire; revoke them with DELETE. ' +
          `At most ${MAX_ACTIVE_API_KEYS} active keys per user (409 \`too_many_api_keys\`). ` +
          'Send `Idempotency-Key` to make retries safe: the same key and body create one key and get the ' +
          'first answer again (`idempotent-replayed: true`), but with `key` null ' +
          '(`idempotent-secret-redacted: true`), since Velro never stores it: a client that lost the first ' +
          'answer revokes that key (its `id` is in the replay) and creates another. The same key with another ' +
          'body gets 422 `idempotency_mismatch`; a duplicate sent while the first still runs, 409 ' +
          '`idempotency_in_progress`.',
        headers: idempotencyKeyHeaders,
        body: createBody,
        response: { 201: createdKeySchema, 409: problemSchema, 422: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const key = generateApiKey();
      const row = await withUserTx(app.db, caller.id, async (tx) => {
        // Serialises concurrent creations by the same user, so the cap holds.
        await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`api-keys:${caller.id}`]);
        const { rows: count } = await tx.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM api_keys WHERE revoked_at IS NULL',
        );
        if (count[0]!.n >= MAX_ACTIVE_API_KEYS) {
          throw new ApiError(
            409,
            'too_many_api_keys',
            `You already have ${MAX_ACTIVE_API_KEYS} active API keys; revoke one first.`,
          );
        }
        const { rows } = await tx.query<KeyRow>(
          `INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4)
           RETURNING id, name, prefix, created_at, last_used_at`,
          [caller.id, req.body.name, key.prefix, key.hash],
        );
        return rows[0]!;
      });
      req.log.info({ apiKeyId: row.id }, 'API key created');
      return reply
        .status(201)
        .header('cache-control', 'no-store')
        .send({ ...toView(row), key: key.key });
    },
  );

  app.get(
    '/v1/api-keys',
    {
      schema: {
        tags: ['account'],
        summary: "The caller's active API keys, newest first",
        description: 'Never the keys themselves: only their names and prefixes.',
        querystring: paginationQuery,
        response: {
          200: z.object({ data: z.array(apiKeySchema), nextCursor: z.string().nullable() }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<KeyRow>(
          `SELECT id, name, prefix, created_at, last_used_at FROM api_keys
           WHERE revoked_at IS NULL AND ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
           ORDER BY created_at DESC, id DESC LIMIT $3`,
          [after?.createdAt ?? null, after?.id ?? null, limit + 1],
        ),
      );
      return toPage(rows, limit, (r) => ({ createdAt: r.created_at, id: r.id }), toView);
    },
  );

  app.delete(
    '/v1/api-keys/:id',
    {
      schema: {
        tags: ['account'],
        summary: 'Revoke an API key',
        description: 'Takes effect at once: the next request with the key gets 401. A key may revoke itself.',
        params: idParams,
        response: { 204: z.undefined(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const { rowCount } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [
          req.params.id,
        ]),
      );
      if (rowCount === 0) throw notFound('API key');
      req.log.info({ apiKeyId: req.params.id }, 'API key revoked');
      return reply.status(204).send();
    },
  );
};

export default apiKeys;
