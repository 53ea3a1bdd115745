import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { withUserTx, type Tx } from '../../lib/db/pool';
import { generateWebhookSecret } from '../../lib/webhooks/signing';
import {
  ensureAccountSecret,
  MAX_WEBHOOK_ENDPOINTS,
  rotateAccountSecret,
  WEBHOOK_EVENT_TYPES,
  type AccountSecret,
} from '../../lib/webhooks/store';
import { checkWebhookUrl, webhookUrlPolicy, WebhookUrlRefused } from '../../lib/webhooks/url-policy';
import type { Config } from '../../lib/config';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import {
  errorResponses,
  idempotencyKeyHeaders,
  idParams,
  paginationQuery,
  problemSchema,
  afterCursor,
  toPage,
} from '../schemas/common';

/**
 * The 400 a client gets for a webhook URL Velro will not send to (not https in production, or a
 * host inside the network). Used for registered endpoints and for a generation's webhookUrl.
 */
export async function assertWebhookUrl(config: Config, url: string, field: string): Promise<void> {
  try {
    await checkWebhookUrl(url, webhookUrlPolicy(config));
  } catch (err) {
    if (!(err instanceof WebhookUrlRefused)) throw err;
    throw new ApiError(400, 'invalid_webhook_url', `${field}: ${err.message}`, {
      errors: [{ path: field, message: err.message }],
    });
  }
}

const AT = '2026-11-25T12:00:00.000Z';
const ENDPOINT_ID = '5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f';
const SECRET_EXAMPLE = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';

const eventType = z.enum(WEBHOOK_EVENT_TYPES);

const endpointSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: z
      .array(eventType)
      .nullable()
      .describe('The event types sent to this endpoint; null: every type, including ones added later'),
    status: z.enum(['enabled', 'disabled']),
    disabledReason: z.string().nullable().describe('Why it was disabled, e.g. it answered 410 Gone'),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({
    id: 'WebhookEndpoint',
    examples: [
      {
        id: ENDPOINT_ID,
        url: 'https://hooks.example.com/velro',
        events: ['generation.succeeded', 'generation.failed'],
        status: 'enabled',
        disabledReason: null,
        createdAt: AT,
        updatedAt: AT,
      },
    ],
  });

const secretFields = {
  secret: z.string().describe('`whsec_<base64>`: the Standard Webhooks HMAC-SHA256 signing secret'),
  previousSecretExpiresAt: z
    .string()
    .nullable()
    .describe('After a rotation, deliveries are signed with the previous secret too until then'),
};

const endpointWithSecretSchema = endpointSchema.extend(secretFields).meta({
  id: 'WebhookEndpointWithSecret',
  examples: [
    {
      id: ENDPOINT_ID,
      url: 'https://hooks.example.com/velro',
      events: ['generation.succeeded', 'generation.failed'],
      status: 'enabled',
      disabledReason: null,
      createdAt: AT,
      updatedAt: AT,
      secret: SECRET_EXAMPLE,
      previousSecretExpiresAt: null,
    },
  ],
});

const createdEndpointSchema = endpointSchema
  .extend({
    ...secretFields,
    secret: z
      .string()
      .nullable()
      .describe(
        '`whsec_<base64>`: the Standard Webhooks HMAC-SHA256 signing secret, shown this once. null when the ' +
          'answer is a replay (`Idempotency-Key`, `idempotent-secret-redacted: true`)',
      ),
  })
  .meta({
    id: 'CreatedWebhookEndpoint',
    examples: [
      {
        id: ENDPOINT_ID,
        url: 'https://hooks.example.com/velro',
        events: ['generation.succeeded', 'generation.failed'],
        status: 'enabled',
        disabledReason: null,
        createdAt: AT,
        updatedAt: AT,
        secret: SECRET_EXAMPLE,
        previousSecretExpiresAt: null,
      },
    ],
  });

const accountSecretSchema = z
  .object({ ...secretFields, createdAt: z.string(), rotatedAt: z.string().nullable() })
  .meta({
    id: 'WebhookSecret',
    examples: [{ secret: SECRET_EXAMPLE, previousSecretExpiresAt: null, createdAt: AT, rotatedAt: null }],
  });

const deliverySchema = z
  .object({
    id: z.uuid(),
    eventId: z.uuid().describe('The `webhook-id` header, and `id` in the body'),
    eventType: z.string(),
    generationId: z.uuid().nullable(),
    endpointId: z.uuid().nullable().describe("null: the generation's own webhookUrl"),
    url: z.string(),
    status: z
      .enum(['pending', 'delivered', 'failed', 'gone', 'canceled'])
      .describe('pending: being retried; gone: the receiver answered 410; canceled: its endpoint went away'),
    attempts: z.number().int(),
    lastStatusCode: z.number().int().nullable().describe('HTTP status of the last answer'),
    lastError: z.string().nullable(),
    lastAttemptAt: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({
    id: 'WebhookDelivery',
    examples: [
      {
        id: '8e9f0a1b-2c3d-4e5f-8a6b-7c8d9e0f1a2b',
        eventId: '0d1e2f3a-4b5c-8d6e-9f7a-8b9c0d1e2f3a',
        eventType: 'generation.succeeded',
        generationId: '3f6c2a1e-8d4b-4f7a-9c2e-5b1d0e7f9a21',
        endpointId: ENDPOINT_ID,
        url: 'https://hooks.example.com/velro',
        status: 'delivered',
        attempts: 2,
        lastStatusCode: 204,
        lastError: null,
        lastAttemptAt: AT,
        deliveredAt: AT,
        createdAt: AT,
      },
    ],
  });

const createBody = z
  .strictObject({
    url: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .describe('Where events are POSTed: https, on a public address'),
    events: z
      .array(eventType)
      .min(1)
      .max(WEBHOOK_EVENT_TYPES.length)
      .refine((e) => new Set(e).size === e.length, 'must not repeat an event type')
      .optional()
      .describe('Only these event types; every type when absent'),
  })
  .meta({
    examples: [
      { url: 'https://hooks.example.com/velro', events: ['generation.succeeded', 'generation.failed'] },
    ],
  });

interface EndpointRow {
  id: string;
  url: string;
  events: string[] | null;
  disabled_at: Date | null;
  disabled_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

const ENDPOINT_COLUMNS = 'id, url, events, disabled_at, disabled_reason, created_at, updated_at';

const toEndpoint = (r: EndpointRow) => ({
  id: r.id,
  url: r.url,
  events: r.events as z.infer<typeof eventType>[] | null,
  status: r.disabled_at ? ('disabled' as const) : ('enabled' as const),
  disabledReason: r.disabled_reason,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

const toAccountSecret = (s: AccountSecret) => ({
  secret: s.secret,
  previousSecretExpiresAt: s.previousExpiresAt?.toISOString() ?? null,
  createdAt: s.createdAt.toISOString(),
  rotatedAt: s.rotatedAt?.toISOString() ?? null,
});

interface DeliveryRow {
  id: string;
  event_id: string;
  type: string;
  generation_id: string | null;
  endpoint_id: string | null;
  url: string;
  status: z.infer<typeof deliverySchema>['status'];
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
}

const toDelivery = (d: DeliveryRow) => ({
  id: d.id,
  eventId: d.event_id,
  eventType: d.type,
  generationId: d.generation_id,
  endpointId: d.endpoint_id,
  url: d.url,
  status: d.status,
  attempts: d.attempts,
  lastStatusCode: d.last_status,
  lastError: d.last_error,
  lastAttemptAt: d.last_attempt_at?.toISOString() ?? null,
  deliveredAt: d.delivered_at?.toISOString() ?? null,
  createdAt: d.created_at.toISOString(),
});

const deliveriesPage = z.object({ data: z.array(deliverySchema), nextCursor: z.string().nullable() });

function cursorOf(cursor: string | undefined) {
  const after = afterCursor(cursor);
  return after;
}

/** A page of deliveries, newest first, filtered by endpoint and/or generation. */
async function listDeliveries(
  tx: Tx,
  filter: { endpointId?: string; generationId?: string },
  limit: number,
  cursor: string | undefined,
) {
  const after = cursorOf(cursor);
  const { rows } = await tx.query<DeliveryRow>(
    `SELECT d.id, d.event_id, e.type, e.generation_id, d.endpoint_id, d.url, d.status, d.attempts,
            d.last_status, d.last_error, d.last_attempt_at, d.delivered_at, d.created_at
     FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
     WHERE ($1::uuid IS NULL OR d.endpoint_id = $1)
       AND ($2::uuid IS NULL OR e.generation_id = $2)
       AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $4::uuid))
     ORDER BY d.created_at DESC, d.id DESC LIMIT $5`,
    [
      filter.endpointId ?? null,
      filter.generationId ?? null,
      after?.createdAt ?? null,
      after?.id ?? null,
      limit + 1,
    ],
  );
  return toPage(rows, limit, (r) => ({ createdAt: r.created_at, id: r.id }), toDelivery);
}

const webhooks: FastifyPluginAsyncZod = async (app) => {
  const overlap = app.config.WEBHOOK_SECRET_OVERLAP_SECONDS;

  app.get(
    '/v1/webhooks/secret',
    {
      schema: {
        tags: ['webhooks'],
        summary: "The account's webhook signing secret",
        description:
          "Signs the webhooks sent to a generation's own `webhookUrl` (registered endpoints have their own). " +
          'Created on first use. Verify deliveries as Standard Webhooks v1: `webhook-signature` holds ' +
          'space-separated `v1,<base64 HMAC-SHA256>` entries over `${webhook-id}.${webhook-timestamp}.${body}`, ' +
          'keyed with the base64-decoded part of the secret after `whsec_`.',
        response: { 200: accountSecretSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const secret = await withUserTx(app.db, caller.id, (tx) => ensureAccountSecret(tx, caller.id));
      return reply.header('cache-control', 'no-store').send(toAccountSecret(secret));
    },
  );

  app.post(
    '/v1/webhooks/secret/rotate',
    {
      schema: {
        tags: ['webhooks'],
        summary: "Rotate the account's webhook signing secret",
        description:
          `Returns the new secret. For ${overlap} seconds (WEBHOOK_SECRET_OVERLAP_SECONDS) deliveries carry ` +
          'a signature with the previous secret as well, so receivers can switch without missing one.',
        response: { 200: accountSecretSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const secret = await withUserTx(app.db, caller.id, (tx) => rotateAccountSecret(tx, caller.id, overlap));
      req.log.info('webhook secret rotated');
      return reply.header('cache-control', 'no-store').send(toAccountSecret(secret));
    },
  );

  app.get(
    '/v1/webhooks/deliveries',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Webhook deliveries, newest first',
        description:
          "Every delivery of the caller's webhooks (registered endpoints and generations' own webhookUrl), " +
          'with its attempts and the last answer.',
        querystring: paginationQuery.extend({
          generationId: z.uuid().optional(),
          endpointId: z.uuid().optional(),
        }),
        response: { 200: deliveriesPage, ...errorResponses },
      },
    },
    async (req) => {
      const { limit, cursor, generationId, endpointId } = req.query;
      return withUserTx(app.db, callerOf(req).id, (tx) =>
        listDeliveries(tx, { generationId, endpointId }, limit, cursor),
      );
    },
  );

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
        body: createBody,
        response: { 201: createdEndpointSchema, 409: problemSchema, 422: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      await assertWebhookUrl(app.config, req.body.url, 'url');
      const secret = generateWebhookSecret();
      const row = await withUserTx(app.db, caller.id, async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
          `webhook-endpoints:${caller.id}`,
        ]);
        const { rows: count } = await tx.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM webhook_endpoints WHERE deleted_at IS NULL',
        );
        if (count[0]!.n >= MAX_WEBHOOK_ENDPOINTS) {
          throw new ApiError(
            409,
            'too_many_webhook_endpoints',
            `You already have ${MAX_WEBHOOK_ENDPOINTS} webhook endpoints; delete one first.`,
          );
        }
        const { rows } = await tx.query<EndpointRow>(
          `INSERT INTO webhook_endpoints (user_id, url, events, secret) VALUES ($1, $2, $3, $4)
           RETURNING ${ENDPOINT_COLUMNS}`,
          [caller.id, req.body.url, req.body.events ?? null, secret],
        );
        return rows[0]!;
      });
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
        description: 'Never their secrets.',
        querystring: paginationQuery,
        response: {
          200: z.object({ data: z.array(endpointSchema), nextCursor: z.string().nullable() }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const { limit, cursor } = req.query;
      const after = cursorOf(cursor);
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<EndpointRow>(
          `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints
           WHERE deleted_at IS NULL AND ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
           ORDER BY created_at DESC, id DESC LIMIT $3`,
          [after?.createdAt ?? null, after?.id ?? null, limit + 1],
        ),
      );
      return toPage(rows, limit, (r) => ({ createdAt: r.created_at, id: r.id }), toEndpoint);
    },
  );

  async function getOwn(userId: string, id: string): Promise<EndpointRow> {
    const { rows } = await withUserTx(app.db, userId, (tx) =>
      tx.query<EndpointRow>(
        `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL`,
        [id],
      ),
    );
    if (!rows[0]) throw notFound('Webhook endpoint');
    return rows[0];
  }

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
      const { rowCount } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query(
          'UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL',
          [req.params.id],
        ),
      );
      if (rowCount === 0) throw notFound('Webhook endpoint');
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
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<EndpointRow & { secret: string; previous_expires_at: Date }>(
          `UPDATE webhook_endpoints
           SET previous_secret = secret, previous_expires_at = now() + make_interval(secs => $2),
               secret = $3, updated_at = now()
           WHERE id = $1 AND deleted_at IS NULL
           RETURNING ${ENDPOINT_COLUMNS}, secret, previous_expires_at`,
          [req.params.id, overlap, generateWebhookSecret()],
        ),
      );
      const row = rows[0];
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
      return withUserTx(app.db, caller.id, (tx) =>
        listDeliveries(tx, { endpointId: req.params.id }, limit, cursor),
      );
    },
  );
};

export default webhooks;
