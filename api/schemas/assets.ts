import { z } from 'zod';

// GET /v1/assets/:id.

/** A signed URL's query; neither: the owner's API key is needed instead. */
export const assetQuery = z.object({
  expires: z.coerce.number().int().positive().optional(),
  signature: z.string().max(100).optional(),
});

/** The stored file itself: its media type is the asset's. */
export const assetContent = {
  description: 'The stored file, with its media type, `etag` (its SHA-256) and `cache-control`',
  content: {
    'image/*': { schema: z.string().meta({ contentMediaType: 'image/*' }) },
    'video/*': { schema: z.string().meta({ contentMediaType: 'video/*' }) },
  },
};
