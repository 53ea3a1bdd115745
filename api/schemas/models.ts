import { z } from 'zod';
import { IMAGE_FIELDS, type ModelDefinition } from '../../lib/catalog/models';
import { examples } from './examples';

export const imageFieldSchema = z.object({
  field: z.enum(IMAGE_FIELDS as [string, ...string[]]),
  required: z.boolean().describe('Whether the model needs it; without an optional one it renders from text'),
});

export const modelSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.enum(['image', 'video']),
    credits: z.number().int(),
    imageFields: z
      .array(imageFieldSchema)
      .describe(
        "The input fields that take an image: `upload:<id>` (POST /v1/uploads, or the upload's own URL) " +
          'or an https URL. Empty: the model takes no image',
      ),
    inputSchema: z.record(z.string(), z.unknown()).describe('JSON Schema of the model input'),
  })
  .meta({ id: 'Model', examples: [examples.model] });

/** A catalog model as clients see it, its input as JSON Schema. */
export const toModelView = (m: ModelDefinition): z.infer<typeof modelSchema> => {
  const inputSchema = z.toJSONSchema(m.input, { io: 'input' }) as Record<string, unknown>;
  const required = Array.isArray(inputSchema.required) ? (inputSchema.required as string[]) : [];
  return {
    id: m.id,
    name: m.name,
    kind: m.kind,
    credits: m.credits,
    imageFields: m.imageFields.map((field) => ({ field, required: required.includes(field) })),
    inputSchema,
  };
};

export const modelIdParams = z.object({ id: z.string().max(100) });
