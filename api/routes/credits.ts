import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { withUserTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { callerOf } from '../plugins/auth';
import { afterCursor, errorResponses, paginationQuery, toPage } from '../schemas/common';
import { balanceSchema, transferPage } from '../schemas/credits';

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
        response: { 200: transferPage, ...errorResponses },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const rows = await withUserTx(app.db, callerOf(req).id, (tx) =>
        ledger.listTransfers(tx, { after, limit }),
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
