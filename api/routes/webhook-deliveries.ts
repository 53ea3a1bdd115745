import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { withUserTx } from '../../lib/db/pool';
import { listDeliveries } from '../../lib/webhooks/deliveries-store';
import { callerOf } from '../plugins/auth';
import { afterCursor, errorResponses, paginationQuery, toPage } from '../schemas/common';
import { deliveriesPage, rowPosition, toDelivery } from '../schemas/webhooks';

/** Every delivery of the caller's webhooks; one endpoint's are under webhook-endpoints.ts. */
const webhookDeliveries: FastifyPluginAsyncZod = async (app) => {
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
      const after = afterCursor(cursor);
      const rows = await withUserTx(app.db, callerOf(req).id, (tx) =>
        listDeliveries(tx, { generationId, endpointId }, { after, limit }),
      );
      return toPage(rows, limit, rowPosition, toDelivery);
    },
  );
};

export default webhookDeliveries;
