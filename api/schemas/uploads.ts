import { z } from 'zod';
import { paginationQuery } from './common';

// POST/GET/DELETE /v1/uploads, GET /v1/uploads/:id/content.

const UPLOAD_ID = '5d0c9a4e-2b7f-4e1a-9c3d-8f6a1b2c3d4e';
const USER_ID = '9b2e4c6a-1f3d-4a5b-8c7d-0e1f2a3b4c5d';

export const uploadSchema = z
  .object({
    id: z.uuid(),
    teamId: z.uuid().nullable().describe('The team it belongs to; null for a personal upload'),
    createdBy: z.uuid(),
    contentType: z.enum(['image/png', 'image/jpeg', 'image/webp']).describe('As read from the content'),
    bytes: z.number().int(),
    width: z.number().int(),
    height: z.number().int(),
    sha256: z.string().describe('Hex SHA-256 of the bytes'),
    url: z
      .string()
      .describe(
        "The upload's bytes (GET, with the owner's credentials); also accepted as a generation's `image_url`, like `upload:<id>`",
      ),
    expiresAt: z
      .string()
      .nullable()
      .describe('When it is removed unless a generation uses it first; null once one has (then it stays)'),
    createdAt: z.string(),
  })
  .meta({
    id: 'Upload',
    examples: [
      {
        id: UPLOAD_ID,
        teamId: null,
        createdBy: USER_ID,
        contentType: 'image/png',
        bytes: 48213,
        width: 1024,
        height: 768,
        sha256: 'b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9',
        url: `https://api.velro.example/v1/uploads/${UPLOAD_ID}/content`,
        expiresAt: '2026-11-28T12:00:00.000Z',
        createdAt: '2026-11-25T12:00:00.000Z',
      },
    ],
  });

const teamIdQuery = (what: string) => z.uuid().optional().describe(what);

/** POST /v1/uploads. */
export const uploadCreateQuery = z.object({
  teamId: teamIdQuery(
    "Upload for this team (the caller a member or higher); without it, a personal upload (a team key: its team's)",
  ),
});

/** GET /v1/uploads. */
export const uploadListQuery = paginationQuery.extend({
  teamId: teamIdQuery(
    "That team's uploads (any member). Without it: the caller's personal ones (a team key: its team's)",
  ),
});

/** GET /v1/uploads/:id/content: a signed URL's query; neither, the caller's credentials instead. */
export const uploadContentQuery = z.object({
  expires: z.coerce.number().int().positive().optional(),
  signature: z.string().max(100).optional(),
});

/** The media types POST /v1/uploads takes as the raw body. */
export const RAW_IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp'] as const;

const binary = (type: string) => ({ type: 'string', contentMediaType: type });

/**
 * POST /v1/uploads's body, for the document only: the route parses it itself (api/routes/uploads.ts),
 * so it is validated by nothing here. Zod merges `.meta()` into the JSON schema it makes, and
 * @fastify/swagger reads a body schema with `content` as one schema per media type.
 */
export const uploadBody = z.any().meta({
  content: {
    ...Object.fromEntries(
      RAW_IMAGE_TYPES.map((type) => [
        type,
        {
          schema: {
            ...binary(type),
            description: 'The image file itself, as the whole body',
            examples: ['<the bytes of the image>'],
          },
        },
      ]),
    ),
    'multipart/form-data': {
      schema: {
        type: 'object',
        required: ['file'],
        properties: { file: { ...binary('image/*'), description: 'The PNG, JPEG or WebP image' } },
        additionalProperties: false,
        examples: [{ file: '<the bytes of the image>' }],
      },
    },
  },
});

/** The stored image itself. */
export const uploadContent = {
  description: 'The uploaded image, with its media type, `etag` (its SHA-256) and `cache-control`',
  content: Object.fromEntries(
    RAW_IMAGE_TYPES.map((type) => [type, { schema: z.string().meta({ contentMediaType: type }) }]),
  ),
};
