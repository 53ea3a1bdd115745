import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  createApiKey,
  listActiveApiKeys,
  MAX_ACTIVE_API_KEYS,
  revokeApiKey,
  toView,
} from '../../lib/api-keys/store';
import { withUserTx } from '../../lib/db/pool';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import { apiKeySchema, createApiKeyBody, createdApiKeySchema } from '../schemas/api-keys';
import {
  capReached,
  errorResponses,
  idempotentCreation,
  idempotentCreationText,
  idParams,
  listing,
  listOwnPage,
  problemSchema,
} from '../schemas/common';

const apiKeys: FastifyPluginAsyncZod = async (app) => {
  const creation = idempotentCreation(createApiKeyBody, createdApiKeySchema);

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
          'A team API key cannot create keys (403 `forbidden`): team keys are made at POST /v1/teams/{id}/api-keys. ' +
          idempotentCreationText('create one key', {
            field: 'key',
            lost:
              'since Velro never stores it: a client that lost the first answer revokes that key (its `id` is ' +
              'in the replay) and creates another',
          }),
        ...creation,
        response: { ...creation.response, 403: problemSchema },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      // Its key would be the team's bot's own, outside the team's keys, and outlive their revocation.
      if (caller.teamId) {
        throw new ApiError(
          403,
          'forbidden',
          'A team API key cannot create API keys; a team admin creates team keys.',
        );
      }
      const created = await withUserTx(app.db, caller.id, (tx) => createApiKey(tx, caller.id, req.body.name));
      if (!created) {
        throw capReached(
          'too_many_api_keys',
          `You already have ${MAX_ACTIVE_API_KEYS} active API keys; revoke one first.`,
        );
      }
      req.log.info({ apiKeyId: created.row.id }, 'API key created');
      return reply
        .status(201)
        .header('cache-control', 'no-store')
        .send({ ...toView(created.row), key: created.key });
    },
  );

  app.get(
    '/v1/api-keys',
    {
      schema: {
        tags: ['account'],
        summary: "The caller's active personal API keys, newest first",
        description:
          "Never the keys themselves: only their names and prefixes. A team's keys are listed at " +
          'GET /v1/teams/{id}/api-keys.',
        ...listing(apiKeySchema),
      },
    },
    async (req) => {
      await app.credentials.flushLastUsed();
      return listOwnPage(app.db, callerOf(req).id, req.query, listActiveApiKeys, toView);
    },
  );

  app.delete(
    '/v1/api-keys/:id',
    {
      schema: {
        tags: ['account'],
        summary: 'Revoke an API key',
        description:
          'Takes effect at once: the next request with the key gets 401. A key may revoke itself. ' +
          "Personal keys only: a team's keys are revoked at DELETE /v1/teams/{id}/api-keys/{keyId} (404 here).",
        params: idParams,
        response: { 204: z.undefined(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const revoked = await withUserTx(app.db, callerOf(req).id, (tx) => revokeApiKey(tx, req.params.id));
      if (!revoked) throw notFound('API key');
      app.credentials.forgetApiKey(req.params.id);
      req.log.info({ apiKeyId: req.params.id }, 'API key revoked');
      return reply.status(204).send();
    },
  );
};

export default apiKeys;
