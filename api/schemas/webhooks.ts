import { z } from 'zod';
import type { Config } from '../../lib/config';
import type { DeliveryRow } from '../../lib/webhooks/deliveries-store';
import { WEBHOOK_DELIVERY_STATES } from '../../lib/webhooks/deliveries-store';
import type { EndpointRow } from '../../lib/webhooks/endpoints-store';
import { WEBHOOK_EVENT_TYPES } from '../../lib/webhooks/events-store';
import type { AccountSecret } from '../../lib/webhooks/secrets-store';
import { judgeWebhookUrl, webhookUrlPolicy } from '../../lib/webhooks/url-policy';
import { ApiError } from '../errors';

// The webhook resources as the API documents them (routes webhook-endpoints.ts,
// team-webhook-endpoints.ts, webhook-secret.ts, webhook-deliveries.ts), and the views from stored
// rows. Declared in this order on purpose: the `.meta({ id })` calls name the OpenAPI components in
// the order they run.

/**
 * The 400 a client gets for a webhook URL Velro will not send to (not https in production, or a
 * host inside the network). Used for registered endpoints and for a generation's webhookUrl.
 */
export async function assertWebhookUrl(
  config: Pick<Config, 'WEBHOOK_ALLOW_HTTP' | 'WEBHOOK_ALLOW_PRIVATE_URLS'>,
  url: string,
  field: string,
): Promise<void> {
  const verdict = await judgeWebhookUrl(url, webhookUrlPolicy(config));
  if (verdict.ok) return;
  throw new ApiError(400, 'invalid_webhook_url', `${field}: ${verdict.reason}`, {
    errors: [{ path: field, message: verdict.reason }],
  });
}

const AT = '2026-11-25T12:00:00.000Z';
const ENDPOINT_ID = '5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f';
const SECRET_EXAMPLE = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';

export const eventType = z.enum(WEBHOOK_EVENT_TYPES);

export const endpointSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: z
      .array(eventType)
      .nullable()
      .describe('The event types sent to this endpoint; null: every type, including ones added later'),
    status: z.enum(['enabled', 'disabled']),
    disabledReason: z.string().nullable().describe('Why it was disabled, e.g. it answered 410 Gone'),
    teamId: z
      .uuid()
      .nullable()
      .describe("A team's endpoint: its team (it gets the team's generations); null: personal"),
    createdBy: z.uuid().nullable().describe("Who registered a team's endpoint; null for a personal one"),
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
        teamId: null,
        createdBy: null,
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

export const endpointWithSecretSchema = endpointSchema.extend(secretFields).meta({
  id: 'WebhookEndpointWithSecret',
  examples: [
    {
      id: ENDPOINT_ID,
      url: 'https://hooks.example.com/velro',
      events: ['generation.succeeded', 'generation.failed'],
      status: 'enabled',
      disabledReason: null,
      teamId: null,
      createdBy: null,
      createdAt: AT,
      updatedAt: AT,
      secret: SECRET_EXAMPLE,
      previousSecretExpiresAt: null,
    },
  ],
});

export const createdEndpointSchema = endpointSchema
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
        teamId: null,
        createdBy: null,
        createdAt: AT,
        updatedAt: AT,
        secret: SECRET_EXAMPLE,
        previousSecretExpiresAt: null,
      },
    ],
  });

export const accountSecretSchema = z
  .object({ ...secretFields, createdAt: z.string(), rotatedAt: z.string().nullable() })
  .meta({
    id: 'WebhookSecret',
    examples: [{ secret: SECRET_EXAMPLE, previousSecretExpiresAt: null, createdAt: AT, rotatedAt: null }],
  });

export const deliverySchema = z
  .object({
    id: z.uuid(),
    eventId: z.uuid().describe('The `webhook-id` header, and `id` in the body'),
    eventType: z.string(),
    generationId: z.uuid().nullable(),
    endpointId: z.uuid().nullable().describe("null: the generation's own webhookUrl"),
    url: z.string(),
    status: z
      .enum(WEBHOOK_DELIVERY_STATES)
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

export const createEndpointBody = z
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

export const endpointsPage = z.object({ data: z.array(endpointSchema), nextCursor: z.string().nullable() });

export const deliveriesPage = z.object({ data: z.array(deliverySchema), nextCursor: z.string().nullable() });

/** Where a newest-first page row sits, for toPage. */
export const rowPosition = (r: { created_at: Date; id: string }) => ({ createdAt: r.created_at, id: r.id });

export const toEndpoint = (r: EndpointRow): z.infer<typeof endpointSchema> => ({
  id: r.id,
  url: r.url,
  events: r.events,
  status: r.disabled_at ? 'disabled' : 'enabled',
  disabledReason: r.disabled_reason,
  teamId: r.team_id,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

export const toAccountSecret = (s: AccountSecret): z.infer<typeof accountSecretSchema> => ({
  secret: s.secret,
  previousSecretExpiresAt: s.previousExpiresAt?.toISOString() ?? null,
  createdAt: s.createdAt.toISOString(),
  rotatedAt: s.rotatedAt?.toISOString() ?? null,
});

export const toDelivery = (d: DeliveryRow): z.infer<typeof deliverySchema> => ({
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
