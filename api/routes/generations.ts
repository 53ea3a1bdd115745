import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { examples } from '../schemas/examples';
import { MODEL_IDS } from '../../lib/catalog/models';
import { withUserTx } from '../../lib/db/pool';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import {
  errorResponses,
  idParams,
  paginationQuery,
  problemSchema,
  afterCursor,
  toPage,
} from '../schemas/common';
import { GENERATION_SELECT, loadGeneration, toView, type GenerationRow } from '../../lib/generations/view';
import { generationSchema } from '../schemas/generations';
import { cancelGeneration } from '../services/cancel-generation';
import { submitGeneration, waitUntilDone } from '../services/submit-generation';
import { assertWebhookUrl } from './webhooks';
import { publicUrl } from '../../lib/config';

const submitBody = z
  .strictObject({
    model: z.enum(MODEL_IDS).describe('A model id from GET /v1/models'),
    input: z
      .record(z.string(), z.unknown())
      .describe("The model's input; see its inputSchema in GET /v1/models/:id"),
    projectId: z.uuid().nullish(),
    webhookUrl: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .nullish(),
  })
  .meta({ examples: [examples.submit] });

const submitHeaders = z.object({
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

/** `Prefer: wait=N` → N; other preferences are ignored, as RFC 7240 asks. */
function parsePreferWait(header: string | undefined): number | undefined {
  const match = header && /(?:^|[,;\s])wait\s*=\s*"?([^",;\s]*)"?/i.exec(header);
  if (!match) return undefined;
  const seconds = Number(match[1]);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) {
    throw new ApiError(
      400,
      'invalid_request',
      'Prefer: wait must be a whole number of seconds from 1 to 60.',
    );
  }
  return seconds;
}

const listQuery = paginationQuery.extend({
  projectId: z.uuid().optional(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']).optional(),
  model: z.enum(MODEL_IDS).optional(),
});

const generations: FastifyPluginAsyncZod = async (app) => {
  const view = (row: GenerationRow) =>
    toView(row, publicUrl(app.config), app.assetSigningKey, app.config.ASSET_URL_TTL_SECONDS);

  async function getOwn(userId: string, id: string) {
    const row = await withUserTx(app.db, userId, (tx) => loadGeneration(tx, id));
    if (!row) throw notFound('Generation');
    return row;
  }

  app.post(
    '/v1/generations',
    {
      config: { idempotent: 'converge' },
      schema: {
        tags: ['generations'],
        summary: 'Submit a generation',
        description:
          "Validates the model's input, reserves the model's credits and starts the generation. " +
          'Answers 202 once the credits are reserved, 402 when they are not enough (nothing is charged). ' +
          'Send `Idempotency-Key` to make retries safe: the same key and body return the first answer; ' +
          'without a key, a retried request may create a second generation. ' +
          '`Prefer: wait=N` (1–60) holds the answer until the generation ends or N seconds pass: ' +
          '200 when it ended, 202 while it still runs.',
        headers: submitHeaders,
        body: submitBody,
        response: {
          200: generationSchema,
          202: generationSchema,
          402: problemSchema,
          409: problemSchema,
          422: problemSchema,
          503: problemSchema,
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const waitSeconds = parsePreferWait(req.headers.prefer);
      if (req.body.webhookUrl) await assertWebhookUrl(app.config, req.body.webhookUrl, 'webhookUrl');
      const id = await submitGeneration(app, caller, req.body, req.idempotencyKey);
      if (waitSeconds) await waitUntilDone(app, id, waitSeconds);
      const generation = view(await getOwn(caller.id, id));
      const done = !['queued', 'running'].includes(generation.status);
      if (waitSeconds) reply.header('preference-applied', `wait=${waitSeconds}`);
      return reply
        .status(waitSeconds && done ? 200 : 202)
        .header('location', `/v1/generations/${id}`)
        .send(generation);
    },
  );

  app.get(
    '/v1/generations/:id',
    {
      schema: {
        tags: ['generations'],
        summary: 'Get a generation',
        params: idParams,
        response: { 200: generationSchema, ...errorResponses },
      },
    },
    async (req) => view(await getOwn(callerOf(req).id, req.params.id)),
  );

  app.get(
    '/v1/generations',
    {
      schema: {
        tags: ['generations'],
        summary: 'List generations, newest first',
        querystring: listQuery,
        response: {
          200: z.object({ data: z.array(generationSchema), nextCursor: z.string().nullable() }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const { limit, cursor, projectId, status, model } = req.query;
      const after = afterCursor(cursor);
      const where: string[] = [];
      const params: unknown[] = [];
      const add = (sql: string, value: unknown) => {
        params.push(value);
        where.push(sql.replace('?', `$${params.length}`));
      };
      if (projectId) add('g.project_id = ?', projectId);
      if (status) add('g.status = ?', status);
      if (model) add('g.model = ?', model);
      if (after) {
        params.push(after.createdAt, after.id);
        where.push(`(g.created_at, g.id) < ($${params.length - 1}, $${params.length})`);
      }
      params.push(limit + 1);
      const sql = `${GENERATION_SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY g.created_at DESC, g.id DESC LIMIT $${params.length}`;
      const { rows } = await withUserTx(app.db, callerOf(req).id, (tx) =>
        tx.query<GenerationRow>(sql, params),
      );
      return toPage(rows, limit, (r) => ({ createdAt: r.created_at, id: r.id }), view);
    },
  );

  app.post(
    '/v1/generations/:id/cancel',
    {
      schema: {
        tags: ['generations'],
        summary: 'Cancel a generation',
        description:
          'Stops the generation and refunds its credits, in any stage before the provider has ' +
          'reported success. From then on it is stored and charged, and a cancel answers 409 ' +
          '`not_cancelable` (also once it has succeeded). Canceling a generation that already ' +
          'failed or was canceled answers 202 with it as it is.',
        params: idParams,
        response: { 202: generationSchema, 409: problemSchema, 503: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const row = await getOwn(caller.id, req.params.id);
      if (row.status === 'succeeded') {
        throw new ApiError(409, 'not_cancelable', 'This generation has already succeeded and was charged.');
      }
      if (row.status === 'queued' || row.status === 'running') {
        try {
          await cancelGeneration(app.temporal, row.id);
        } catch (err) {
          // Refused because it ended meanwhile as failed or canceled: that is what the caller wanted.
          if (!(err instanceof ApiError && err.code === 'not_cancelable')) throw err;
          const now = await getOwn(caller.id, row.id);
          if (now.status !== 'failed' && now.status !== 'canceled') throw err;
        }
      }
      return reply.status(202).send(view(await getOwn(caller.id, row.id)));
    },
  );
};

export default generations;
