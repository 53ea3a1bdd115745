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
        response: { 200: meSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { id } = callerOf(req);
      return withUserTx(app.db, id, async (tx) => {
        const user = (await loadUser(tx, id))!;
        const b = await ledger.balance(tx, id);
        return {
          id,
          email: user.email,
          role: user.role,
          createdAt: user.created_at.toISOString(),
          credits: { available: b.available, reserved: b.reserved, spent: b.spent },
        };
      });
    },
  );
};

export default me;
