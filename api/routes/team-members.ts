import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listMembers, removeMember, transferOwnership, updateMember } from '../../lib/teams/store';
import { callerOf } from '../plugins/auth';
import { errorResponses, idParams, listPage, paginationQuery, problemSchema } from '../schemas/common';
import {
  memberChangeBody,
  memberParams,
  membersPage,
  teamMemberSchema,
  teamSchema,
  toMember,
  toTeam,
  transferBody,
} from '../schemas/teams';
import { inTeamTx, memberNotFound } from '../team-tx';

/** A team's members: roles, monthly spend limits, leaving, and the owner role's transfer. */
const teamMembers: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/teams/:id/members',
    {
      schema: {
        tags: ['teams'],
        summary: "A team's members, newest first",
        description: 'Any member. People only: team API keys are listed as keys.',
        params: idParams,
        querystring: paginationQuery,
        response: { 200: membersPage, ...errorResponses },
      },
    },
    async (req) =>
      listPage(
        req.query,
        (page) => inTeamTx(app.db, req, (tx) => listMembers(tx, req.params.id, page)),
        toMember,
      ),
  );

  app.patch(
    '/v1/teams/:id/members/:userId',
    {
      schema: {
        tags: ['teams'],
        summary: "Change a member's role or monthly spend limit",
        description:
          'Admin or owner. Nobody changes a member above its own role or gives a role above it (403 ' +
          '`forbidden` with `requiredRole`). The owner keeps its role until it transfers ownership (409 ' +
          '`owner_required`). A limit below what the member already spent this month is accepted: it stops ' +
          'new reservations (402 `spend_limit_exceeded`) until the next month.',
        params: memberParams,
        body: memberChangeBody,
        response: { 200: teamMemberSchema, 403: problemSchema, 409: problemSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { id, userId } = req.params;
      const row = await inTeamTx(app.db, req, (tx) => updateMember(tx, id, userId, req.body));
      if (!row) throw memberNotFound();
      return toMember(row);
    },
  );

  app.delete(
    '/v1/teams/:id/members/:userId',
    {
      schema: {
        tags: ['teams'],
        summary: 'Remove a member, or leave a team',
        description:
          'Any member may remove itself; removing another takes admin or owner. The owner cannot leave ' +
          '(409 `owner_cannot_leave`: transfer ownership first). Removal takes effect at once for every ' +
          'credential and open event stream of the member.',
        params: memberParams,
        response: { 204: z.undefined(), 403: problemSchema, 409: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { id, userId } = req.params;
      const removed = await inTeamTx(app.db, req, (tx) => removeMember(tx, id, userId, callerOf(req).id));
      if (!removed) throw memberNotFound();
      return reply.status(204).send();
    },
  );

  app.post(
    '/v1/teams/:id/transfer-ownership',
    {
      schema: {
        tags: ['teams'],
        summary: 'Hand the owner role to another member',
        description:
          'Owner only. `userId` must be a member of the team (a person, not a team key; 404 otherwise). ' +
          'The old owner becomes an admin; the answer is the team as the caller now sees it.',
        params: idParams,
        body: transferBody,
        response: { 200: teamSchema, 403: problemSchema, ...errorResponses },
      },
    },
    async (req) =>
      toTeam(await inTeamTx(app.db, req, (tx) => transferOwnership(tx, req.params.id, req.body.userId))),
  );
};

export default teamMembers;
