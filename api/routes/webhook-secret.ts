import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { withUserTx } from '../../lib/db/pool';
import { ensureAccountSecret, rotateAccountSecret } from '../../lib/webhooks/secrets-store';
import { callerOf } from '../plugins/auth';
import { errorResponses } from '../schemas/common';
import { accountSecretSchema, toAccountSecret } from '../schemas/webhooks';

/** The account's webhook signing secret: it signs the deliveries to a generation's own webhookUrl. */
const webhookSecret: FastifyPluginAsyncZod = async (app) => {
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
};

export default webhookSecret;
