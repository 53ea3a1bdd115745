import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findModel, MODELS } from '../../lib/catalog/models';
import { notFound } from '../errors';
import { errorResponses } from '../schemas/common';
import { modelIdParams, modelSchema, toModelView } from '../schemas/models';

// The catalog is fixed at start-up: describe it once.
const described = MODELS.map(toModelView);

const models: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/models',
    {
      schema: {
        tags: ['models'],
        summary: 'The model catalog',
        response: { 200: z.object({ data: z.array(modelSchema) }), ...errorResponses },
      },
    },
    async () => ({ data: described }),
  );

  app.get(
    '/v1/models/:id',
    {
      schema: {
        tags: ['models'],
        summary: 'One model, with its input schema',
        params: modelIdParams,
        response: { 200: modelSchema, ...errorResponses },
      },
    },
    async (req) => {
      const model = findModel(req.params.id);
      if (!model) throw notFound('Model');
      return described[MODELS.indexOf(model)]!;
    },
  );
};

export default models;
