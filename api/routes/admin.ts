import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { withUserTx } from '../../lib/db/pool';
import { LedgerError } from '../../lib/ledger/errors';
import * as ledger from '../../lib/ledger/ledger';
import { ApiError } from '../errors';
import { ledgerProblem } from '../ledger-problems';
import { callerOf } from '../plugins/auth';
import { grantBody, grantSchema } from '../schemas/admin';
import { errorResponses, problemSchema } from '../schemas/common';

const admin: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/v1/admin/credit-grants',
    {
      schema: {
        tags: ['admin'],
        summary: 'Grant credits to a user (admins only)',
        body: grantBody,
        response: { 201: grantSchema, ...errorResponses, 403: problemSchema, 409: problemSchema },
      },
      // Before the body is validated: a non-admin learns nothing about what a valid grant looks like.
      preValidation: async (req) => {
        if (callerOf(req).role !== 'admin')
          throw new ApiError(403, 'forbidden', 'Only admins may grant credits.');
      },
    },
    async (req, reply) => {
      const body = req.body;
      let t: ledger.Transfer;
      try {
        // As the admin (app.user_id): admin_grant_credits checks that role in the database too.
        t = await withUserTx(app.db, callerOf(req).id, (tx) =>
          ledger.adminGrant(tx, {
            id: body.id ?? randomUUID(),
            userId: body.userId,
            amount: body.credits,
            reason: body.reason,
            expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
          }),
        );
      } catch (err) {
        if (err instanceof LedgerError) {
          throw ledgerProblem(err, `User ${body.userId} not found`);
        }
        // Demoted between the check above and the grant.
        if ((err as { code?: string }).code === '42501') {
          throw new ApiError(403, 'forbidden', 'Only admins may grant credits.');
        }
        // The same client-chosen id raced for two different users: the second insert loses.
        if ((err as { code?: string }).code === '23505') {
          throw new ApiError(
            409,
            'transfer_conflict',
            `transfer ${body.id} already exists with different fields`,
          );
        }
        throw err;
      }
      return reply.status(201).send({
        id: t.id,
        kind: 'grant' as const,
        userId: t.userId!,
        amount: t.amount,
        reason: t.reason,
        expiresAt: t.expiresAt?.toISOString() ?? null,
        createdAt: t.createdAt.toISOString(),
      });
    },
  );
};

export default admin;
