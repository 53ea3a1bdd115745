import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  accountLimits,
  DEFAULT_ACCOUNT_PRIORITY,
  setAccountLimits,
  type AccountLimitsRow,
} from '../../lib/capacity/account-limits';
import type { Config } from '../../lib/config';
import { withUserTx, type Tx } from '../../lib/db/pool';
import { ApiError } from '../errors';
import { callerOf } from '../plugins/auth';
import { accountParams, limitsBody, limitsSchema } from '../schemas/account-limits';
import { errorResponses, problemSchema } from '../schemas/common';

function toLimits(accountId: string, row: AccountLimitsRow, config: Config) {
  return {
    accountId,
    accountKind: row.account_kind,
    maxConcurrentVideo: row.max_video ?? config.CAPACITY_ACCOUNT_MAX_VIDEO,
    maxConcurrentImage: row.max_image ?? config.CAPACITY_ACCOUNT_MAX_IMAGE,
    priority: row.priority ?? DEFAULT_ACCOUNT_PRIORITY,
    overrides: {
      maxConcurrentVideo: row.max_video,
      maxConcurrentImage: row.max_image,
      priority: row.priority,
    },
    updatedAt: row.updated_at?.toISOString() ?? null,
  };
}

const notFound = (id: string) => new ApiError(404, 'not_found', `No user or team has the id ${id}.`);

const accountLimitsRoutes: FastifyPluginAsyncZod = async (app) => {
  // Before the body is validated: a non-admin learns nothing about what valid limits look like.
  const adminsOnly = async (req: FastifyRequest) => {
    if (callerOf(req).role !== 'admin')
      throw new ApiError(403, 'forbidden', 'Only admins may see or set account limits.');
  };
  const asAdmin = <T>(req: FastifyRequest, fn: (tx: Tx) => Promise<T>) => {
    const caller = callerOf(req);
    return withUserTx(app.db, { userId: caller.id, requestId: req.id, apiKeyId: caller.apiKeyId }, fn).catch(
      (err: unknown) => {
        // Demoted between the check above and the statement.
        if ((err as { code?: string }).code === '42501')
          throw new ApiError(403, 'forbidden', 'Only admins may see or set account limits.');
        throw err;
      },
    );
  };
  const description =
    "An account (a user, or a team) may have this many generations of each media kind at providers at once, across all providers; more wait in Velro's queue. When a provider slot frees, it goes to the waiting account whose turn it is: turns are weighted by priority. Defaults: CAPACITY_ACCOUNT_MAX_VIDEO, CAPACITY_ACCOUNT_MAX_IMAGE, priority 5.";

  app.get(
    '/v1/admin/accounts/:id/limits',
    {
      schema: {
        tags: ['admin'],
        summary: "An account's capacity limits (admins only)",
        description,
        params: accountParams,
        response: { 200: limitsSchema, ...errorResponses, 403: problemSchema },
      },
      preValidation: adminsOnly,
    },
    async (req) => {
      const row = await asAdmin(req, (tx) => accountLimits(tx, req.params.id));
      if (!row) throw notFound(req.params.id);
      return toLimits(req.params.id, row, app.config);
    },
  );

  app.patch(
    '/v1/admin/accounts/:id/limits',
    {
      schema: {
        tags: ['admin'],
        summary: "Set an account's capacity limits (admins only)",
        description: `${description} A field left out stays as it is; null sets it back to the default. Takes effect at the next grant.`,
        params: accountParams,
        body: limitsBody,
        response: { 200: limitsSchema, ...errorResponses, 403: problemSchema },
      },
      preValidation: adminsOnly,
    },
    async (req) => {
      const b = req.body;
      const row = await asAdmin(req, (tx) =>
        setAccountLimits(tx, req.params.id, {
          maxVideo: b.maxConcurrentVideo,
          maxImage: b.maxConcurrentImage,
          priority: b.priority,
        }),
      );
      if (!row) throw notFound(req.params.id);
      return toLimits(req.params.id, row, app.config);
    },
  );
};

export default accountLimitsRoutes;
