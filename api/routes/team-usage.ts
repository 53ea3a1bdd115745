import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { withUserTx } from '../../lib/db/pool';
import { teamRoleOf } from '../../lib/teams/credits-store';
import { currentMonth, teamUsage } from '../../lib/teams/usage-store';
import { teamNotFound } from '../errors';
import { callerOf } from '../plugins/auth';
import { errorResponses, idParams } from '../schemas/common';
import { usageQuery, usageSchema } from '../schemas/team-credits';

const teamUsageRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/teams/:id/usage',
    {
      schema: {
        tags: ['teams'],
        summary: "The team's usage in a month, per member and model",
        description:
          'From the reservations on the team account made in the month (UTC): how many, and the credits ' +
          'still reserved, spent (committed) and refunded (released). Admins and the owner see every ' +
          'member; members and viewers only their own rows.',
        params: idParams,
        querystring: usageQuery,
        response: { 200: usageSchema, ...errorResponses },
      },
    },
    async (req) => {
      const teamId = req.params.id;
      const month = req.query.month ?? currentMonth();
      const data = await withUserTx(app.db, callerOf(req).id, async (tx) =>
        (await teamRoleOf(tx, teamId)) ? teamUsage(tx, teamId, month) : null,
      );
      if (!data) throw teamNotFound();
      return { month, data };
    },
  );
};

export default teamUsageRoutes;
