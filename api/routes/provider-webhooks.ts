import { createHash } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { isTerminal } from '../../lib/generations/status';
import { generationsWaitingOn, recordProviderWebhook } from '../../lib/generations/provider-webhook-store';
import type { Provider, WebhookVerdict } from '../../lib/providers/provider';
import { createProviders } from '../../lib/wiring/from-config';
import { generationWorkflowId, providerEventSignal } from '../../workflows/definitions';
import { ApiError, unavailable } from '../errors';
import { problemSchema } from '../schemas/common';
import { providerParams, receivedSchema } from '../schemas/provider-webhooks';

/** Provider webhooks carry a status object, not media: 1 MiB is far more than any of them needs. */
export const WEBHOOK_BODY_LIMIT = 1024 * 1024;

const refused = () =>
  new ApiError(401, 'unauthorized', 'The webhook signature is missing, invalid, stale or replayed.');

/**
 * Inbound provider webhooks. The raw bytes are verified (signature, timestamp, replay) before
 * anything in them is used; a verified one only wakes the generation's workflow, which then asks
 * the provider itself. A duplicate or late webhook therefore changes nothing.
 */
const providerWebhooks: FastifyPluginAsyncZod = async (app) => {
  const providers: Partial<Record<string, Provider>> = createProviders(app.config, app.storage);

  // This plugin's own parser (Fastify scopes parsers to the plugin): every body stays a Buffer,
  // whatever its content type, because the signature covers the exact bytes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_req, body, done) =>
    done(null, body),
  );

  app.post(
    '/v1/provider-webhooks/:provider',
    {
      config: { public: true },
      bodyLimit: WEBHOOK_BODY_LIMIT,
      schema: {
        tags: ['providers'],
        summary: 'Inbound provider webhook (fal, Replicate)',
        description:
          'Called by fal.ai (Ed25519 signature, X-Fal-Webhook-* headers) and Replicate (Standard Webhooks ' +
          'HMAC signature). Verified over the raw body; forged, stale or replayed deliveries get 401. A ' +
          'verified delivery makes the generation check its provider at once; the answer is 200 even ' +
          'when the generation is already finished or unknown.',
        params: providerParams,
        response: {
          200: receivedSchema,
          401: problemSchema,
          404: problemSchema,
          413: problemSchema,
          503: problemSchema,
        },
      },
    },
    async (req) => {
      const name = req.params.provider;
      const provider = Object.hasOwn(providers, name) ? providers[name] : undefined;
      if (!provider?.verifyWebhook) {
        throw new ApiError(404, 'not_found', `No webhooks are accepted for provider ${name}.`);
      }
      const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const log = req.log.child({ provider: name });

      let verdict: WebhookVerdict;
      try {
        verdict = await provider.verifyWebhook({ headers: req.headers, rawBody });
      } catch (err) {
        // The keys could not be fetched: not the sender's fault; it will send again.
        log.warn({ err }, 'provider webhook could not be verified');
        throw unavailable('The webhook cannot be verified right now.', 30);
      }
      if (!verdict.ok) {
        log.warn({ reason: verdict.reason }, 'provider webhook refused');
        throw refused();
      }

      const digest = createHash('sha256').update(verdict.replayKey).digest('hex');
      if (!(await recordProviderWebhook(app.db, name, digest))) {
        log.warn({ requestKey: verdict.requestKey }, 'provider webhook refused: replayed delivery');
        throw refused();
      }

      const rows = await generationsWaitingOn(app.db, name, verdict.requestKey);
      let signalled = 0;
      for (const row of rows) {
        if (isTerminal(row.status)) continue;
        try {
          await app.temporal.workflow
            .getHandle(generationWorkflowId(row.id))
            .signal(providerEventSignal, { requestId: verdict.requestKey });
          signalled++;
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) continue; // finished meanwhile
          log.warn({ err, generationId: row.id }, 'could not signal the generation');
          throw unavailable('The webhook could not be delivered; send it again.', 10);
        }
      }
      log.info(
        { requestKey: verdict.requestKey, matched: rows.length, signalled },
        'provider webhook received',
      );
      return { received: true as const };
    },
  );
};

export default providerWebhooks;
