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
        summary: 'Grant credits to a user or a team (admins only)',
        description:
          'Exactly one of `userId` and `teamId`. A team grant goes into the team account and is an event ' +
          "(`credits.granted`) of the team's audit log.",
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
        const grant = {
          id: body.id ?? randomUUID(),
          amount: body.credits,
          reason: body.reason,
          expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
        };
        const caller = callerOf(req);
        // As the admin (app.user_id): admin_grant_credits checks that role in the database too. The
        // request and key go along for a team grant's audit event (credits.granted).
        t = await withUserTx(
          app.db,
          { userId: caller.id, requestId: req.id, apiKeyId: caller.apiKeyId },
          (tx) =>
            ledger.adminGrant(
              tx,
              body.teamId ? { ...grant, teamId: body.teamId } : { ...grant, userId: body.userId! },
            ),
        );
      } catch (err) {
        if (err instanceof LedgerError) {
          throw ledgerProblem(err, body.teamId ? 'Team not found.' : `User ${body.userId} not found`);
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
        userId: t.teamId ? null : t.userId,
        teamId: t.teamId,
        amount: t.amount,
        reason: t.reason,
        expiresAt: t.expiresAt?.toISOString() ?? null,
        createdAt: t.createdAt.toISOString(),
      });
    },
  );
};

export default admin;
