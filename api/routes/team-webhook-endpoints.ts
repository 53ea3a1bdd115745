import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Tx } from '../../lib/db/pool';
import { requireTeamRole } from '../../lib/teams/store';
import { listTeamDeliveries } from '../../lib/webhooks/deliveries-store';
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listEndpoints,
  MAX_WEBHOOK_ENDPOINTS,
  rotateEndpointSecret,
} from '../../lib/webhooks/endpoints-store';
import { generateWebhookSecret } from '../../lib/webhooks/signing';
import { ApiError, notFound } from '../errors';
import {
  afterCursor,
  errorResponses,
  idempotencyKeyHeaders,
  idParams,
  paginationQuery,
  problemSchema,
  toPage,
} from '../schemas/common';
import {
  assertWebhookUrl,
  createdEndpointSchema,
  createEndpointBody,
  deliveriesPage,
  endpointSchema,
  endpointsPage,
  endpointWithSecretSchema,
  rowPosition,
  toDelivery,
  toEndpoint,
} from '../schemas/webhooks';
import { inTeamTx } from '../team-tx';

const endpointParams = idParams.extend({ endpointId: idParams.shape.id });
const refusals = { 403: problemSchema, ...errorResponses };

/**
 * A team's webhook endpoints (admin or owner): every generation of the team that ends is sent to
 * them, besides its creator's own endpoints. As the personal ones (webhook-endpoints.ts) otherwise.
 */
const teamWebhookEndpoints: FastifyPluginAsyncZod = async (app) => {
  const overlap = app.config.WEBHOOK_SECRET_OVERLAP_SECONDS;

  /** `fn` in the caller's transaction, once it is known to be an admin or the owner of the team. */
  const asTeamAdmin = <T>(req: FastifyRequest, teamId: string, fn: (tx: Tx) => Promise<T>) =>
    inTeamTx(app.db, req, async (tx) => {
      await requireTeamRole(tx, teamId, 'admin');
      return fn(tx);
    });

  app.post(
    '/v1/teams/:id/webhook-endpoints',
    {
      config: { idempotent: 'exclusive', idempotentSecretFields: ['secret'] },
      schema: {
        tags: ['teams'],
        summary: 'Register a webhook endpoint of the team',
        description:
          'Admin or owner. Every generation of the team that ends with one of `events` is POSTed to `url`, ' +
          "whoever created it, signed with the endpoint's own secret (Standard Webhooks), which this answer " +
          "carries once; the creator's own endpoints get it too while the creator is a member. The URL rules, " +
          'retries and 410 Gone are those of POST /v1/webhook-endpoints (400 `invalid_webhook_url`). ' +
          `At most ${MAX_WEBHOOK_ENDPOINTS} endpoints per team (409 \`too_many_webhook_endpoints\`). ` +
          '`Idempotency-Key` works as there: a replay carries `secret` null; rotate it if the first answer was lost.',
        params: idParams,
        headers: idempotencyKeyHeaders,
        body: createEndpointBody,
        response: { 201: createdEndpointSchema, 409: problemSchema, 422: problemSchema, ...refusals },
      },
    },
    async (req, reply) => {
      await assertWebhookUrl(app.config, req.body.url, 'url');
      const secret = generateWebhookSecret();
      const teamId = req.params.id;
      const row = await asTeamAdmin(req, teamId, (tx) =>
        createEndpoint(tx, { teamId }, { url: req.body.url, events: req.body.events ?? null, secret }),
      );
      if (row === 'limit_reached') {
        throw new ApiError(
          409,
          'too_many_webhook_endpoints',
          `The team already has ${MAX_WEBHOOK_ENDPOINTS} webhook endpoints; delete one first.`,
        );
      }
      req.log.info({ webhookEndpointId: row.id, teamId }, 'team webhook endpoint registered');
      return reply
        .status(201)
        .header('location', `/v1/teams/${teamId}/webhook-endpoints/${row.id}`)
        .header('cache-control', 'no-store')
        .send({ ...toEndpoint(row), secret, previousSecretExpiresAt: null });
    },
  );

  app.get(
    '/v1/teams/:id/webhook-endpoints',
    {
      schema: {
        tags: ['teams'],
        summary: "The team's webhook endpoints, newest first",
        description: 'Admin or owner. Never their secrets.',
        params: idParams,
        querystring: paginationQuery,
        response: { 200: endpointsPage, ...refusals },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const rows = await asTeamAdmin(req, req.params.id, (tx) =>
        listEndpoints(tx, { teamId: req.params.id }, { after, limit }),
      );
      return toPage(rows, limit, rowPosition, toEndpoint);
    },
  );

  app.get(
    '/v1/teams/:id/webhook-endpoints/:endpointId',
    {
      schema: {
        tags: ['teams'],
        summary: 'Get a webhook endpoint of the team',
        description: 'Admin or owner.',
        params: endpointParams,
        response: { 200: endpointSchema, ...refusals },
      },
    },
    async (req) => {
      const { id, endpointId } = req.params;
      const row = await asTeamAdmin(req, id, (tx) => getEndpoint(tx, { teamId: id }, endpointId));
      if (!row) throw notFound('Webhook endpoint');
      return toEndpoint(row);
    },
  );

  app.delete(
    '/v1/teams/:id/webhook-endpoints/:endpointId',
    {
      schema: {
        tags: ['teams'],
        summary: 'Delete a webhook endpoint of the team',
        description:
          'Admin or owner. Nothing more is sent to it, retries included. Its delivery history stays readable.',
        params: endpointParams,
        response: { 204: z.undefined(), ...refusals },
      },
    },
    async (req, reply) => {
      const { id, endpointId } = req.params;
      const deleted = await asTeamAdmin(req, id, (tx) => deleteEndpoint(tx, { teamId: id }, endpointId));
      if (!deleted) throw notFound('Webhook endpoint');
      req.log.info({ webhookEndpointId: endpointId, teamId: id }, 'team webhook endpoint deleted');
      return reply.status(204).send();
    },
  );

  app.post(
    '/v1/teams/:id/webhook-endpoints/:endpointId/rotate-secret',
    {
      schema: {
        tags: ['teams'],
        summary: "Rotate a team webhook endpoint's signing secret",
        description:
          `Admin or owner. Returns the endpoint with its new secret. For ${overlap} seconds deliveries ` +
          'carry a signature with the previous secret as well.',
        params: endpointParams,
        response: { 200: endpointWithSecretSchema, ...refusals },
      },
    },
    async (req, reply) => {
      const { id, endpointId } = req.params;
      const row = await asTeamAdmin(req, id, (tx) =>
        rotateEndpointSecret(tx, { teamId: id }, endpointId, overlap),
      );
      if (!row) throw notFound('Webhook endpoint');
      req.log.info({ webhookEndpointId: row.id, teamId: id }, 'team webhook endpoint secret rotated');
      return reply.header('cache-control', 'no-store').send({
        ...toEndpoint(row),
        secret: row.secret,
        previousSecretExpiresAt: row.previous_expires_at.toISOString(),
      });
    },
  );

  app.get(
    '/v1/teams/:id/webhook-endpoints/:endpointId/deliveries',
    {
      schema: {
        tags: ['teams'],
        summary: "A team webhook endpoint's deliveries, newest first",
        description: 'Admin or owner.',
        params: endpointParams,
        querystring: paginationQuery,
        response: { 200: deliveriesPage, ...refusals },
      },
    },
    async (req) => {
      const { id, endpointId } = req.params;
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const rows = await asTeamAdmin(req, id, async (tx) => {
        if (!(await getEndpoint(tx, { teamId: id }, endpointId))) throw notFound('Webhook endpoint');
        return listTeamDeliveries(tx, id, { endpointId }, { after, limit });
      });
      return toPage(rows, limit, rowPosition, toDelivery);
    },
  );
};

export default teamWebhookEndpoints;
