import { z } from 'zod';
import type { ModelDefinition } from '../../lib/catalog/models';
import { examples } from './examples';

export const modelSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.enum(['image', 'video']),
    credits: z.number().int(),
    inputSchema: z.record(z.string(), z.unknown()).describe('JSON Schema of the model input'),
  })
  .meta({ id: 'Model', examples: [examples.model] });

/** A catalog model as clients see it, its input as JSON Schema. */
export const toModelView = (m: ModelDefinition): z.infer<typeof modelSchema> => ({
  id: m.id,
  name: m.name,
  kind: m.kind,
  credits: m.credits,
  inputSchema: z.toJSONSchema(m.input, { io: 'input' }) as Record<string, unknown>,
});

export const modelIdParams = z.object({ id: z.string().max(100) });
