import { z } from 'zod';
import { MODEL_IDS } from '../../lib/catalog/models';
import { GENERATION_STATUSES } from '../../lib/generations/status';
import type { GenerationView } from '../../lib/generations/view';
import { pageSchema, paginationQuery } from './common';
import { examples } from './examples';

// The generation routes' schemas: /v1/generations (submit, list, get, cancel) and its event stream.

export const generationSchema = z
  .object({
    id: z.uuid(),
    model: z.string(),
    status: z.enum(GENERATION_STATUSES),
    stage: z.string(),
    input: z.record(z.string(), z.unknown()),
    projectId: z.uuid().nullable(),
    teamId: z.uuid().nullable().describe('The team whose account paid; null for a personal generation'),
    createdBy: z.uuid().describe("The user who made it (for a team key: the key's own user)"),
    credits: z.object({
      amount: z.number().int(),
      state: z.enum(['reserved', 'charged', 'refunded', 'none']),
    }),
    outputs: z.array(
      z.object({
        id: z.uuid(),
        url: z.string(),
        contentType: z.string(),
        bytes: z.number().int(),
        width: z.number().int().nullable(),
        height: z.number().int().nullable(),
        durationMs: z.number().int().nullable(),
        sha256: z.string(),
      }),
    ),
    inputs: z
      .array(
        z.object({
          field: z.string().describe('The input field the image was given in: image_url or end_image_url'),
          uploadId: z.uuid().describe('The upload (GET /v1/uploads/:id); a copy of an image given by URL'),
          contentType: z.string(),
          width: z.number().int(),
          height: z.number().int(),
        }),
      )
      .describe(
        "The generation's input images, listed once the worker has taken them; apart from its outputs",
      ),
    queuePosition: z
      .int()
      .min(1)
      .nullable()
      .describe(
        'While `stage` is `waiting for capacity`: where it waits for a provider slot (1: next, an estimate ' +
          'from the current turns); else null',
      ),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    completedAt: z.string().nullable(),
  })
  .meta({ id: 'Generation', examples: [examples.generation] }) satisfies z.ZodType<GenerationView>;

export const submitBody = z
  .strictObject({
    model: z.enum(MODEL_IDS).describe('A model id from GET /v1/models'),
    input: z
      .record(z.string(), z.unknown())
      .describe("The model's input; see its inputSchema in GET /v1/models/:id"),
    projectId: z.uuid().nullish().describe("A project of the caller's, or of a team it belongs to"),
    teamId: z
      .uuid()
      .nullish()
      .describe(
        "Charge the team's account (role member or higher). A team project implies its team; " +
          "a team API key's generations are its team's unless it names another.",
      ),
    webhookUrl: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .nullish(),
    priority: z
      .int()
      .min(1)
      .max(10)
      .optional()
      .describe(
        "1-10 (default 5): this generation's place among its account's own generations waiting for " +
          'provider capacity (higher first; a long wait raises it). Between accounts, turns are fair.',
      ),
  })
  .meta({ examples: [examples.submit] });

export const submitHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .optional()
    .describe('Makes retries safe (Stripe semantics), kept 24 h'),
  prefer: z
    .string()
    .max(100)
    .optional()
    .describe('`wait=N` (1–60): answer when the generation ends or after N seconds'),
});

export const listQuery = paginationQuery.extend({
  teamId: z
    .uuid()
    .optional()
    .describe(
      "That team's generations (any member). Without it: the caller's personal ones (a team key: its team's)",
    ),
  projectId: z.uuid().optional(),
  status: z.enum(GENERATION_STATUSES).optional(),
  model: z.enum(MODEL_IDS).optional(),
});

export const generationPage = pageSchema(generationSchema);

/** GET /v1/generations/:id/events: where a reconnecting client left off. */
export const eventsHeaders = z.object({ 'last-event-id': z.string().max(100).optional() });
