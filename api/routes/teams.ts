import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createTeam, deleteTeam, getTeam, listTeams, renameTeam } from '../../lib/teams/store';
import { ApiError, teamNotFound } from '../errors';
import { callerOf } from '../plugins/auth';
import { errorResponses, idParams, listPage, paginationQuery, problemSchema } from '../schemas/common';
import { teamBody, teamSchema, teamsPage, toTeam } from '../schemas/teams';
import { inTeamTx } from '../team-tx';

/** Teams: a credit account that people share, with roles (DESIGN.md, Teams). */
const teams: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/teams',
    {
      schema: {
        tags: ['teams'],
        summary: 'Create a team',
        description:
          'The caller becomes its owner; the team gets its own credit account (empty). ' +
          'A team API key cannot create teams (403 `forbidden`).',
        body: teamBody,
        response: { 201: teamSchema, 403: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      if (callerOf(req).teamId)
        throw new ApiError(
          403,
          'forbidden',
          'A team API key cannot create teams; use a personal key or login.',
        );
      const row = await inTeamTx(app.db, req, (tx) => createTeam(tx, req.body.name));
      return reply.status(201).header('location', `/v1/teams/${row.id}`).send(toTeam(row));
    },
  );

  app.get(
    '/v1/teams',
    {
      schema: {
        tags: ['teams'],
        summary: "The caller's teams, newest first, each with the caller's role",
        querystring: paginationQuery,
        response: { 200: teamsPage, ...errorResponses },
      },
    },
    async (req) => listPage(req.query, (page) => inTeamTx(app.db, req, (tx) => listTeams(tx, page)), toTeam),
  );

  app.get(
    '/v1/teams/:id',
    {
      schema: {
        tags: ['teams'],
        summary: 'Get a team',
        description: 'Any member. A team the caller is not a member of is 404, as if it did not exist.',
        params: idParams,
        response: { 200: teamSchema, ...errorResponses },
      },
    },
    async (req) => {
      const row = await inTeamTx(app.db, req, (tx) => getTeam(tx, req.params.id));
      if (!row) throw teamNotFound();
      return toTeam(row);
    },
  );

  app.patch(
    '/v1/teams/:id',
    {
      schema: {
        tags: ['teams'],
        summary: 'Rename a team',
        description: 'Admin or owner (403 `forbidden` with `requiredRole` otherwise).',
        params: idParams,
        body: teamBody,
        response: { 200: teamSchema, 403: problemSchema, ...errorResponses },
      },
    },
    async (req) => toTeam(await inTeamTx(app.db, req, (tx) => renameTeam(tx, req.params.id, req.body.name))),
  );

  app.delete(
    '/v1/teams/:id',
    {
      schema: {
        tags: ['teams'],
        summary: 'Delete a team',
        description:
          'Owner only. Refused with 409 `team_has_generations_in_flight` while a generation of the team is ' +
          'queued or running (or holds a reservation), and 409 `team_has_credits` while its account holds ' +
          'credits. Its members, pending invitations and team keys end; its ledger and generations stay as history.',
        params: idParams,
        response: { 204: z.undefined(), 403: problemSchema, 409: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      await inTeamTx(app.db, req, (tx) => deleteTeam(tx, req.params.id));
      return reply.status(204).send();
    },
  );
};

export default teams;
