import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { withUserTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { loadUser } from '../../lib/users/store';
import { callerOf } from '../plugins/auth';
import { errorResponses } from '../schemas/common';
import { meSchema } from '../schemas/me';

const me: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/me',
    {
      schema: {
        tags: ['account'],
        summary: 'The caller, with its credit balance',
        description:
          'For a team API key: its own user (`kind` `team_key`, an address that receives no mail), its team ' +
          "and the team's balance.",
        response: { 200: meSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { id, teamId } = callerOf(req);
      return withUserTx(app.db, id, async (tx) => {
        const user = (await loadUser(tx, id))!;
        // A team key's user holds no credit of its own: it spends its team's.
        const b = teamId ? await ledger.teamBalance(tx, teamId) : await ledger.balance(tx, id);
        return {
          id,
          email: user.email,
          role: user.role,
          createdAt: user.created_at.toISOString(),
          credits: { available: b.available, reserved: b.reserved, spent: b.spent },
          kind: teamId ? ('team_key' as const) : ('person' as const),
          teamId,
        };
      });
    },
  );
};

export default me;
