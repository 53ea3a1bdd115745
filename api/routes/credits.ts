import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { examples } from '../schemas/examples';
import { withUserTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { callerOf } from '../plugins/auth';
import { errorResponses, paginationQuery, afterCursor, toPage } from '../schemas/common';

export const balanceSchema = z
  .object({
    available: z.number().int(),
    reserved: z.number().int(),
    spent: z.number().int(),
  })
  .meta({ id: 'CreditBalance', examples: [examples.balance] });

const transferSchema = z
  .object({
    id: z.uuid(),
    kind: z.enum(['grant', 'reserve', 'commit', 'release', 'expire']),
    amount: z.number().int(),
    generationId: z.uuid().nullable(),
    pendingId: z.uuid().nullable(),
    reason: z.string().nullable(),
    expiresAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: 'CreditTransfer', examples: [examples.transfer] });

const credits: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/credits',
    {
      schema: {
        tags: ['credits'],
        summary: "The caller's credit balance",
        response: { 200: balanceSchema, ...errorResponses },
      },
    },
    async (req) => {
      const { id } = callerOf(req);
      const b = await withUserTx(app.db, id, (tx) => ledger.balance(tx, id));
      return { available: b.available, reserved: b.reserved, spent: b.spent };
    },
  );

  app.get(
    '/v1/credits/transactions',
    {
      schema: {
        tags: ['credits'],
        summary: "The caller's ledger transfers, newest first",
        querystring: paginationQuery,
        response: {
          200: z.object({ data: z.array(transferSchema), nextCursor: z.string().nullable() }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<ledger.Transfer>(
          `SELECT id, kind, amount, generation_id AS "generationId", pending_id AS "pendingId", reason,
                  expires_at AS "expiresAt", created_at AS "createdAt"
           FROM credit_transfers
           WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
           ORDER BY created_at DESC, id DESC LIMIT $3`,
          [after?.createdAt ?? null, after?.id ?? null, limit + 1],
        ),
      );
      return toPage(
        rows,
        limit,
        (t) => ({ createdAt: t.createdAt, id: t.id }),
        (t) => ({
          id: t.id,
          kind: t.kind,
          amount: t.amount,
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

export default credits;
