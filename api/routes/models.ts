import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findModel, MODELS, type ModelDefinition } from '../../lib/catalog/models';
import { notFound } from '../errors';
import { errorResponses } from '../schemas/common';

const modelSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.enum(['image', 'video']),
    credits: z.number().int(),
    inputSchema: z.record(z.string(), z.unknown()).describe('JSON Schema of the model input'),
  })
  .meta({
    id: 'Model',
    examples: [
      {
        id: 'veo3',
        name: 'Veo 3',
        kind: 'video',
        credits: 500,
        inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
      },
    ],
  });

const describe = (m: ModelDefinition) => ({
  id: m.id,
  name: m.name,
  kind: m.kind,
  credits: m.credits,
  inputSchema: z.toJSONSchema(m.input, { io: 'input' }) as Record<string, unknown>,
});
// The catalog is fixed at start-up: describe it once.
const described = MODELS.map(describe);

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
        params: z.object({ id: z.string().max(100) }),
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
