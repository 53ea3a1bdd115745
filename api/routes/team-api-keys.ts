import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  createTeamApiKey,
  listTeamApiKeys,
  MAX_ACTIVE_TEAM_API_KEYS,
  revokeTeamApiKey,
  toTeamView,
} from '../../lib/api-keys/store';
import { notFound } from '../errors';
import {
  createApiKeyBody,
  createdTeamApiKeySchema,
  teamApiKeyParams,
  teamApiKeySchema,
} from '../schemas/api-keys';
import {
  capReached,
  errorResponses,
  idempotentCreation,
  idempotentCreationText,
  idParams,
  listPage,
  pageSchema,
  paginationQuery,
  problemSchema,
} from '../schemas/common';
import { inTeamTx } from '../team-tx';

/** A team's API keys (admin or owner): keys that act for the team, not for a person. */
const teamApiKeys: FastifyPluginAsyncZod = async (app) => {
  const creation = idempotentCreation(createApiKeyBody, createdTeamApiKeySchema);

  app.post(
    '/v1/teams/:id/api-keys',
    {
      config: { idempotent: 'exclusive', idempotentSecretFields: ['key'] },
      schema: {
        tags: ['teams'],
        summary: 'Create a team API key',
        description:
          'Admin or owner. The key acts for the team, as a member with the role `member`: it reads the ' +
          "team's work and creates generations charged to the team (its `teamId` is the default), which " +
          'are "created by" the key. It belongs to the team, not to its creator: it keeps working when its ' +
          'creator leaves the team. The answer carries the key itself, once. ' +
          `At most ${MAX_ACTIVE_TEAM_API_KEYS} active keys per team (409 \`too_many_api_keys\`). ` +
          idempotentCreationText('create one key', {
            field: 'key',
            lost: 'since Velro never stores it: revoke that key (its `apiKey.id` is in the replay) and create another',
          }),
        params: idParams,
        ...creation,
        response: { ...creation.response, 403: problemSchema },
      },
    },
    async (req, reply) => {
      const made = await inTeamTx(app.db, req, (tx) => createTeamApiKey(tx, req.params.id, req.body.name));
      if (made === 'limit_reached') {
        throw capReached(
          'too_many_api_keys',
          `The team already has ${MAX_ACTIVE_TEAM_API_KEYS} active API keys; revoke one first.`,
        );
      }
      req.log.info({ apiKeyId: made.row.id, teamId: made.row.team_id }, 'team API key created');
      return reply
        .status(201)
        .header('cache-control', 'no-store')
        .send({ apiKey: toTeamView(made.row), key: made.key });
    },
  );

  app.get(
    '/v1/teams/:id/api-keys',
    {
      schema: {
        tags: ['teams'],
        summary: "The team's active API keys, newest first",
        description: 'Admin or owner. Never the keys themselves: only their names and prefixes.',
        params: idParams,
        querystring: paginationQuery,
        response: { 200: pageSchema(teamApiKeySchema), 403: problemSchema, ...errorResponses },
      },
    },
    async (req) => {
      await app.credentials.flushLastUsed();
      return listPage(
        req.query,
        (page) => inTeamTx(app.db, req, (tx) => listTeamApiKeys(tx, req.params.id, page)),
        toTeamView,
      );
    },
  );

  app.delete(
    '/v1/teams/:id/api-keys/:keyId',
    {
      schema: {
        tags: ['teams'],
        summary: 'Revoke a team API key',
        description:
          'Admin or owner. Takes effect at once: the next request with the key gets 401, and its event ' +
          "streams close as a removed member's do.",
        params: teamApiKeyParams,
        response: { 204: z.undefined(), 403: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { id, keyId } = req.params;
      const revoked = await inTeamTx(app.db, req, (tx) => revokeTeamApiKey(tx, id, keyId));
      if (!revoked) throw notFound('API key');
      app.credentials.forgetApiKey(keyId);
      req.log.info({ apiKeyId: keyId, teamId: id }, 'team API key revoked');
      return reply.status(204).send();
    },
  );
};

export default teamApiKeys;
