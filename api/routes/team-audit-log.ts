import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { listAuditEvents } from '../../lib/teams/audit-store';
import { errorResponses, idParams, listPage, problemSchema } from '../schemas/common';
import { auditPage, auditQuery, toAuditEvent } from '../schemas/teams';
import { inTeamTx } from '../team-tx';

/** A team's append-only audit trail, written by the database itself (db/migrations/009_teams.sql). */
const teamAuditLog: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/teams/:id/audit-log',
    {
      schema: {
        tags: ['teams'],
        summary: "A team's audit log, newest first",
        description:
          'Admin or owner. One event per change of the team, its members (role, spend limit), invitations, ' +
          'team keys and credits, with who made it (user and API key), before and after, and the request id ' +
          '(the `x-request-id` of the request that made it). Filters: `action` (exact) and `actor` (a user id).',
        params: idParams,
        querystring: auditQuery,
        response: { 200: auditPage, 403: problemSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { action, actor } = req.query;
      return listPage(
        req.query,
        (page) => inTeamTx(app.db, req, (tx) => listAuditEvents(tx, req.params.id, { action, actor }, page)),
        toAuditEvent,
      );
    },
  );
};

export default teamAuditLog;
