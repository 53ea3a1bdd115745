import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { activeProvider, publicUrl } from '../../lib/config';
import { isTerminal } from '../../lib/generations/status';
import { listVisibleGenerations } from '../../lib/generations/store';
import { toView, type GenerationRow } from '../../lib/generations/view';
import { webhookUrlPolicy } from '../../lib/webhooks/url-policy';
import { ApiError } from '../errors';
import { callerOf } from '../plugins/auth';
import { errorResponses, idParams, listPage, problemSchema } from '../schemas/common';
import {
  generationPage,
  generationSchema,
  listQuery,
  submitBody,
  submitHeaders,
} from '../schemas/generations';
import {
  cancelGeneration,
  submitGeneration,
  visibleGeneration,
  waitUntilDone,
  type GenerationDeps,
} from '../services/generations';
import { answeringTeamRefusals, teamOf } from '../services/team-access';
import { assertWebhookUrl } from '../schemas/webhooks';

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

const generations: FastifyPluginAsyncZod = async (app) => {
  const view = (row: GenerationRow) =>
    toView(row, publicUrl(app.config), app.assetSigningKey, app.config.ASSET_URL_TTL_SECONDS);
  const deps: GenerationDeps = {
    db: app.db,
    temporal: app.temporal,
    taskQueue: app.config.TEMPORAL_TASK_QUEUE,
    provider: activeProvider(app.config),
    admissionTimeoutMs: app.config.ADMISSION_TIMEOUT_MS,
    inputUrlPolicy: webhookUrlPolicy(app.config),
    publicUrl: publicUrl(app.config),
    log: app.log,
  };

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
          "With `teamId`, or in a team's project, or with a team API key, the team's account pays and the " +
          'generation is seen by every member: the caller must be a member or higher (a viewer gets 403, a team it ' +
          'is not in 404), within its monthly spend limit (else 402 `spend_limit_exceeded` with `limit` and ' +
          '`remaining`). ' +
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
          403: problemSchema,
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
      const id = await submitGeneration(deps, caller, req.body, req.idempotencyKey);
      if (waitSeconds) await waitUntilDone(deps, id, waitSeconds);
      const generation = view(await visibleGeneration(deps, caller.id, id));
      const done = isTerminal(generation.status);
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
        description: "The caller's own generation, or one of a team it belongs to.",
        params: idParams,
        response: { 200: generationSchema, ...errorResponses },
      },
    },
    async (req) => view(await visibleGeneration(deps, callerOf(req).id, req.params.id)),
  );

  app.get(
    '/v1/generations',
    {
      schema: {
        tags: ['generations'],
        summary: 'List generations, newest first',
        querystring: listQuery,
        response: { 200: generationPage, ...errorResponses },
      },
    },
    async (req) => {
      const caller = callerOf(req);
      const { projectId, status, model } = req.query;
      const teamId = teamOf(caller, req.query.teamId);
      return listPage(
        req.query,
        (page) =>
          answeringTeamRefusals(() =>
            listVisibleGenerations(app.db, caller.id, { teamId }, { projectId, status, model }, page),
          ),
        view,
      );
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
          'failed or was canceled answers 202 with it as it is. A team generation is canceled by its creator ' +
          "(while a member or higher) or by the team's admins; others get 403 naming the role needed.",
        params: idParams,
        response: {
          202: generationSchema,
          403: problemSchema,
          409: problemSchema,
          503: problemSchema,
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const row = await cancelGeneration(deps, callerOf(req).id, req.params.id);
      return reply.status(202).send(view(row));
    },
  );
};

export default generations;
