import { z } from 'zod';
import { findModel, MODEL_IDS, type FalEndpoints } from './models';

/** fal endpoint ids per model id, as FAL_ENDPOINTS gives them (each key may be left out). */
export type FalEndpointOverrides = Readonly<Record<string, FalEndpoints>>;

const endpointId = z
  .string()
  .regex(/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)+$/, 'must be a fal endpoint id like fal-ai/veo3/image-to-video');

const overridesSchema = z.record(
  z.string(),
  z.strictObject({ text: endpointId.optional(), image: endpointId.optional() }),
);

/**
 * Parses FAL_ENDPOINTS (`{"<model id>": {"text": "...", "image": "..."}}`). Throws an Error whose
 * message names what is wrong: not JSON, an unknown model id, an endpoint that is not an id, or an
 * image endpoint for a model that takes no image.
 */
export function parseFalEndpoints(raw: string | undefined): FalEndpointOverrides {
  if (raw === undefined || raw.trim() === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new Error(`not JSON (${(err as Error).message})`);
  }
  const parsed = overridesSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.map(String).join('.');
    throw new Error(`${at ? `${at}: ` : ''}${issue.message}`);
  }
  for (const [id, endpoints] of Object.entries(parsed.data)) {
    const model = findModel(id);
    if (!model) throw new Error(`unknown model id ${id} (known: ${MODEL_IDS.join(', ')})`);
    if (endpoints.image && model.imageFields.length === 0) {
      throw new Error(`${id}.image: ${id} takes no image`);
    }
  }
  return parsed.data;
}
