import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { withUserTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { callerOf } from '../plugins/auth';
import { errorResponses } from '../schemas/common';
import { balanceSchema } from './credits';

const me: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/me',
    {
      schema: {
        tags: ['account'],
        summary: 'The caller, with its credit balance',
        response: {
          200: z.object({
            id: z.uuid(),
            email: z.string(),
            role: z.enum(['user', 'admin']),
            createdAt: z.string(),
            credits: balanceSchema,
          }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const { id } = callerOf(req);
      return withUserTx(app.db, id, async (tx) => {
        const { rows } = await tx.query<{ email: string; role: 'user' | 'admin'; created_at: Date }>(
          'SELECT email, role, created_at FROM users WHERE id = $1',
          [id],
        );
        const user = rows[0]!;
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
