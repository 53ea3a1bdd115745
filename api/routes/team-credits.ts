import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { withUserTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { teamRoleOf } from '../../lib/teams/credits-store';
import { teamNotFound } from '../errors';
import { callerOf } from '../plugins/auth';
import { afterCursor, errorResponses, idParams, paginationQuery, toPage } from '../schemas/common';
import { teamBalanceSchema, teamTransferPage } from '../schemas/team-credits';

const teamCredits: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/teams/:id/credits',
    {
      schema: {
        tags: ['teams'],
        summary: "The team's credit balance (any member)",
        params: idParams,
        response: { 200: teamBalanceSchema, ...errorResponses },
      },
    },
    async (req) => {
      const teamId = req.params.id;
      const b = await withUserTx(app.db, callerOf(req).id, async (tx) =>
        (await teamRoleOf(tx, teamId)) ? ledger.teamBalance(tx, teamId) : null,
      );
      if (!b) throw teamNotFound();
      return b;
    },
  );

  app.get(
    '/v1/teams/:id/credits/transactions',
    {
      schema: {
        tags: ['teams'],
        summary: "The team account's transfers, newest first",
        description:
          'Admins and the owner see every line; members and viewers only the lines they acted on. ' +
          '`userId` is the member who acted (null for grants and for expiries of lapsed grants).',
        params: idParams,
        querystring: paginationQuery,
        response: { 200: teamTransferPage, ...errorResponses },
      },
    },
    async (req) => {
      const teamId = req.params.id;
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const rows = await withUserTx(app.db, callerOf(req).id, async (tx) =>
        (await teamRoleOf(tx, teamId)) ? ledger.listTeamTransfers(tx, teamId, { after, limit }) : null,
      );
      if (!rows) throw teamNotFound();
      return toPage(
        rows,
        limit,
        (t) => ({ createdAt: t.createdAt, id: t.id }),
        (t) => ({
          id: t.id,
          kind: t.kind,
          amount: t.amount,
          userId: t.userId,
          generationId: t.generationId,
          pendingId: t.pendingId,
          reason: t.reason,
          expiresAt: t.expiresAt?.toISOString() ?? null,
          createdAt: t.createdAt.toISOString(),
        }),
      );
    },
  );
};

export default teamCredits;
