import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { withUserTx } from '../../lib/db/pool';
import { listDeliveries } from '../../lib/webhooks/deliveries-store';
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listEndpoints,
  MAX_WEBHOOK_ENDPOINTS,
  rotateEndpointSecret,
  type EndpointRow,
} from '../../lib/webhooks/endpoints-store';
import { generateWebhookSecret } from '../../lib/webhooks/signing';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
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

/** Registered webhook endpoints, each with its own secret, and each one's deliveries. */
const webhookEndpoints: FastifyPluginAsyncZod = async (app) => {
  const overlap = app.config.WEBHOOK_SECRET_OVERLAP_SECONDS;

  async function getOwn(userId: string, id: string): Promise<EndpointRow> {
    const row = await withUserTx(app.db, userId, (tx) => getEndpoint(tx, { userId }, id));
    if (!row) throw notFound('Webhook endpoint');
    return row;
  }

  app.post(
    '/v1/webhook-endpoints',
    {
      config: { idempotent: 'exclusive', idempotentSecretFields: ['secret'] },
      schema: {
        tags: ['webhooks'],
        summary: 'Register a webhook endpoint',
        description:
          'Every generation of the account that ends with one of `events` is POSTed to `url`, signed with ' +
          "the endpoint's own secret (Standard Webhooks), which this answer carries once. " +
          'The URL must be https on a public address (400 `invalid_webhook_url`). Failed deliveries are ' +
          'retried with exponential backoff for about a day; an endpoint answering 410 Gone is disabled. ' +
          `At most ${MAX_WEBHOOK_ENDPOINTS} endpoints per account (409 \`too_many_webhook_endpoints\`). ` +
          'Send `Idempotency-Key` to make retries safe: the same key and body register one endpoint and get ' +
          'the first answer again (`idempotent-replayed: true`), but with `secret` null ' +
          '(`idempotent-secret-redacted: true`), since the idempotency record never keeps it: a client that ' +
          'lost the first answer rotates the secret (POST /v1/webhook-endpoints/{id}/rotate-secret). The ' +
          'same key with another body gets 422 `idempotency_mismatch`; a duplicate sent while the first ' +
          'still runs, 409 `idempotency_in_progress`.',
        headers: idempotencyKeyHeaders,
        body: createEndpointBody,
        response: { 201: createdEndpointSchema, 409: problemSchema, 422: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      await assertWebhookUrl(app.config, req.body.url, 'url');
      const secret = generateWebhookSecret();
      const row = await withUserTx(app.db, caller.id, (tx) =>
        createEndpoint(
          tx,
          { userId: caller.id },
          { url: req.body.url, events: req.body.events ?? null, secret },
        ),
      );
      if (row === 'limit_reached') {
        throw new ApiError(
          409,
          'too_many_webhook_endpoints',
          `You already have ${MAX_WEBHOOK_ENDPOINTS} webhook endpoints; delete one first.`,
        );
      }
      req.log.info({ webhookEndpointId: row.id }, 'webhook endpoint registered');
      return reply
        .status(201)
        .header('location', `/v1/webhook-endpoints/${row.id}`)
        .header('cache-control', 'no-store')
        .send({ ...toEndpoint(row), secret, previousSecretExpiresAt: null });
    },
  );

  app.get(
    '/v1/webhook-endpoints',
    {
      schema: {
        tags: ['webhooks'],
        summary: "The caller's webhook endpoints, newest first",
        description:
          "Never their secrets. Personal endpoints only: a team's are at GET /v1/teams/{id}/webhook-endpoints.",
        querystring: paginationQuery,
        response: { 200: endpointsPage, ...errorResponses },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const userId = callerOf(req).id;
      const rows = await withUserTx(app.db, userId, (tx) => listEndpoints(tx, { userId }, { after, limit }));
      return toPage(rows, limit, rowPosition, toEndpoint);
    },
  );

  app.get(
    '/v1/webhook-endpoints/:id',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Get a webhook endpoint',
        params: idParams,
        response: { 200: endpointSchema, ...errorResponses },
      },
    },
    async (req) => toEndpoint(await getOwn(callerOf(req).id, req.params.id)),
  );

  app.delete(
    '/v1/webhook-endpoints/:id',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Delete a webhook endpoint',
        description: 'Nothing more is sent to it, retries included. Its delivery history stays readable.',
        params: idParams,
        response: { 204: z.undefined(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const userId = callerOf(req).id;
      const deleted = await withUserTx(app.db, userId, (tx) => deleteEndpoint(tx, { userId }, req.params.id));
      if (!deleted) throw notFound('Webhook endpoint');
      req.log.info({ webhookEndpointId: req.params.id }, 'webhook endpoint deleted');
      return reply.status(204).send();
    },
  );

  app.post(
    '/v1/webhook-endpoints/:id/rotate-secret',
    {
      schema: {
        tags: ['webhooks'],
        summary: "Rotate a webhook endpoint's signing secret",
        description:
          `Returns the endpoint with its new secret. For ${overlap} seconds deliveries carry a signature ` +
          'with the previous secret as well.',
        params: idParams,
        response: { 200: endpointWithSecretSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const userId = callerOf(req).id;
      const row = await withUserTx(app.db, userId, (tx) =>
        rotateEndpointSecret(tx, { userId }, req.params.id, overlap),
      );
      if (!row) throw notFound('Webhook endpoint');
      req.log.info({ webhookEndpointId: row.id }, 'webhook endpoint secret rotated');
      return reply.header('cache-control', 'no-store').send({
        ...toEndpoint(row),
        secret: row.secret,
        previousSecretExpiresAt: row.previous_expires_at.toISOString(),
      });
    },
  );

  app.get(
    '/v1/webhook-endpoints/:id/deliveries',
    {
      schema: {
        tags: ['webhooks'],
        summary: "A webhook endpoint's deliveries, newest first",
        params: idParams,
        querystring: paginationQuery,
        response: { 200: deliveriesPage, ...errorResponses },
      },
    },
    async (req) => {
      const caller = callerOf(req);
      await getOwn(caller.id, req.params.id);
      const { limit, cursor } = req.query;
      const after = afterCursor(cursor);
      const rows = await withUserTx(app.db, caller.id, (tx) =>
        listDeliveries(tx, { endpointId: req.params.id }, { after, limit }),
      );
      return toPage(rows, limit, rowPosition, toDelivery);
    },
  );
};

export default webhookEndpoints;
