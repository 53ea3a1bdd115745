import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod, ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { checkUploadSignature } from '../../lib/auth/signed-urls';
import { publicUrl } from '../../lib/config';
import { withUserTx, type Tx } from '../../lib/db/pool';
import { checkImage, type ImageCheck } from '../../lib/media/image-check';
import { MultipartError, MultipartFileTooLarge, parseFilePart } from '../../lib/uploads/multipart';
import { findSignedUpload, type UploadFile } from '../../lib/uploads/signed-read';
import {
  deleteUpload,
  getUpload,
  insertUpload,
  listUploads,
  toUploadView,
  uploadStorageKey,
  type UploadRow,
} from '../../lib/uploads/store';
import { requireTeamRole } from '../../lib/teams/store';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import {
  errorResponses,
  idempotencyKeyHeaders,
  idempotentCreationText,
  idParams,
  listPage,
  pageSchema,
  problemSchema,
} from '../schemas/common';
import {
  RAW_IMAGE_TYPES,
  uploadBody,
  uploadContent,
  uploadContentQuery,
  uploadCreateQuery,
  uploadListQuery,
  uploadSchema,
} from '../schemas/uploads';
import { answeringTeamRefusals, teamOf } from '../services/team-access';

/**
 * A POST body as this plugin's parser reads it: the image's bytes and what the sender said they
 * are. `toJSON` is what the idempotency plugin binds a key to (it hashes `JSON.stringify(body)`):
 * the image's digest, its declared type and the team asked for (a query parameter, which that hash
 * does not otherwise cover), not the bytes, and not a multipart form's boundary, which a client
 * picks anew on every retry.
 */
class ReceivedImage {
  readonly sha256: string;
  constructor(
    readonly bytes: Buffer,
    readonly declaredType: string | undefined,
    /** Where the image was in the request, for a refusal's `errors`. */
    readonly path: 'body' | 'body.file',
    private readonly teamId: unknown,
  ) {
    this.sha256 = createHash('sha256').update(bytes).digest('hex');
  }

  toJSON() {
    return { sha256: this.sha256, declaredType: this.declaredType ?? null, teamId: this.teamId ?? null };
  }
}

const essence = (contentType: string | undefined) => (contentType ?? '').split(';')[0]!.trim().toLowerCase();

const wrongType = (given: string) =>
  new ApiError(
    415,
    'unsupported_media_type',
    'Send the image as the body with content-type image/png, image/jpeg or image/webp, or as ' +
      `multipart/form-data with the image in the field "file"${given ? `, not ${given}` : ''}.`,
    { errors: [{ path: 'headers.content-type', message: 'not an accepted media type' }] },
  );

const tooLarge = (max: number) =>
  new ApiError(413, 'payload_too_large', `The image is larger than ${max} bytes (UPLOAD_MAX_BYTES).`);

/** The body of a POST, by its content-type: a raw image, or the file of a multipart form. */
function receive(req: FastifyRequest, body: Buffer, maxBytes: number): ReceivedImage {
  const contentType = req.headers['content-type'] ?? '';
  const type = essence(contentType);
  const teamId = (req.query as { teamId?: unknown } | undefined)?.teamId;
  if ((RAW_IMAGE_TYPES as readonly string[]).includes(type))
    return new ReceivedImage(body, type, 'body', teamId);
  if (type !== 'multipart/form-data') throw wrongType(type);
  try {
    const part = parseFilePart(body, contentType, { maxFileBytes: maxBytes });
    return new ReceivedImage(part.bytes, part.contentType ?? undefined, 'body.file', teamId);
  } catch (err) {
    if (err instanceof MultipartFileTooLarge) throw tooLarge(maxBytes);
    if (err instanceof MultipartError)
      throw new ApiError(400, 'invalid_request', err.message, {
        errors: [{ path: 'body', message: err.message }],
      });
    throw err;
  }
}

const IMAGE_REFUSALS: Record<Extract<ImageCheck, { ok: false }>['reason'], string> = {
  not_an_image: 'not_an_image',
  unsupported_type: 'unsupported_image_type',
  type_mismatch: 'image_type_mismatch',
  truncated: 'truncated_image',
  too_many_pixels: 'too_many_pixels',
};

const refused = (check: Extract<ImageCheck, { ok: false }>, path: string) =>
  new ApiError(422, IMAGE_REFUSALS[check.reason], check.message, {
    errors: [{ path, message: check.message }],
  });

/**
 * The upload, if the user may delete it: its own personal one, or a team upload it made (a member
 * or higher) or any of the team's (an admin or higher). One it cannot see is a 404; one it sees
 * but may not delete, a 403 naming the role needed.
 */
async function deletableUpload(tx: Tx, userId: string, id: string): Promise<UploadRow> {
  const upload = await getUpload(tx, id);
  if (!upload) throw notFound('Upload');
  const teamId = upload.team_id;
  if (teamId) {
    const needed = upload.user_id === userId ? 'member' : 'admin';
    await answeringTeamRefusals(() => requireTeamRole(tx, teamId, needed));
  }
  return upload;
}

const uploads: FastifyPluginAsyncZod = async (app) => {
  const {
    UPLOAD_MAX_BYTES: maxBytes,
    UPLOAD_MAX_PIXELS: maxPixels,
    UPLOAD_RETENTION_HOURS: hours,
  } = app.config;
  const baseUrl = publicUrl(app.config);
  const view = (row: UploadRow) => toUploadView(row, baseUrl, hours);

  const bodyCodes =
    'Checked by content, not by the declared type: its magic bytes, the size in its header, and its ' +
    'structure to the end. Refusals: 413 `payload_too_large` over UPLOAD_MAX_BYTES ' +
    `(${maxBytes} bytes: the whole body, a multipart form's framing included); 415 \`unsupported_media_type\` ` +
    'for a body that is neither an accepted image type nor multipart/form-data; 400 `invalid_request` for a ' +
    'malformed form, one without the field `file` or with other fields; 422 `not_an_image`, ' +
    '`unsupported_image_type` (GIF, HEIC, SVG, animated WebP...), `image_type_mismatch` (the declared type, ' +
    'of the body or of the form part, is not what the content is), `truncated_image`, and `too_many_pixels` ' +
    `(over UPLOAD_MAX_PIXELS, ${maxPixels} pixels). Nothing is stored when an image is refused.`;

  await app.register(async (plugin) => {
    const scope = plugin.withTypeProvider<ZodTypeProvider>();
    // The POST's own parser (Fastify scopes parsers to the plugin, so the other routes keep the
    // JSON one): every body is read whole as bytes, up to UPLOAD_MAX_BYTES, and taken only as an
    // image or a multipart form holding one.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxBytes }, (req, body, done) => {
      try {
        done(null, receive(req, body as Buffer, maxBytes));
      } catch (err) {
        done(err as Error, undefined);
      }
    });

    scope.post(
      '/v1/uploads',
      {
        config: { idempotent: 'exclusive' },
        bodyLimit: maxBytes,
        schema: {
          tags: ['uploads'],
          summary: 'Upload an input image',
          description:
            'Stores a PNG, JPEG or WebP image for use as a generation input (`image_url`: `upload:<id>` or ' +
            "the upload's `url`). Send it as the raw body (`content-type: image/png`, `image/jpeg` or " +
            '`image/webp`), or as multipart/form-data (what browsers send) with the file in the field `file`. ' +
            `${bodyCodes} With \`teamId\` (a team API key: its team) the upload is the team's: the caller must be ` +
            `a member or higher (a viewer gets 403; a team it is not in, 404). An upload no generation uses is ` +
            `removed ${hours} hours after it was made (UPLOAD_RETENTION_HOURS); one a generation uses stays. ` +
            idempotentCreationText('store one upload'),
          headers: idempotencyKeyHeaders,
          querystring: uploadCreateQuery,
          body: uploadBody,
          response: {
            201: uploadSchema,
            403: problemSchema,
            409: problemSchema,
            413: problemSchema,
            415: problemSchema,
            422: problemSchema,
            ...errorResponses,
          },
        },
      },
      async (req, reply) => {
        const image = req.body as unknown;
        if (!(image instanceof ReceivedImage)) throw wrongType('');
        const caller = callerOf(req);
        const teamId = teamOf(caller, req.query.teamId);
        const scope = { userId: caller.id, requestId: req.id, apiKeyId: caller.apiKeyId };
        const mayUpload = async (tx: Tx): Promise<void> => {
          if (teamId) await answeringTeamRefusals(() => requireTeamRole(tx, teamId, 'member'));
        };
        if (teamId) await withUserTx(app.db, scope, mayUpload);

        const check = checkImage(image.bytes, { maxPixels, declaredType: image.declaredType });
        if (!check.ok) throw refused(check, image.path);

        // The bytes first, then the row: a row never names bytes that are not there. A failed insert
        // takes the bytes away again.
        const id = randomUUID();
        const storageKey = uploadStorageKey(id, check.contentType);
        await app.storage.put(storageKey, Readable.from([image.bytes]), check.contentType, maxBytes);
        let row: UploadRow;
        try {
          row = await withUserTx(app.db, scope, async (tx) => {
            await mayUpload(tx);
            return insertUpload(tx, {
              id,
              userId: caller.id,
              teamId,
              storageKey,
              contentType: check.contentType,
              bytes: image.bytes.length,
              width: check.width,
              height: check.height,
              sha256: image.sha256,
            });
          });
        } catch (err) {
          await app.storage.delete(storageKey).catch((cleanup: unknown) => {
            req.log.warn(
              { err: cleanup, storageKey },
              'could not remove the bytes of an upload not recorded',
            );
          });
          throw err;
        }
        return reply.status(201).header('location', `/v1/uploads/${id}`).send(view(row));
      },
    );
  });

  app.get(
    '/v1/uploads',
    {
      schema: {
        tags: ['uploads'],
        summary: "The caller's uploads, or a team's, newest first",
        description: 'Live uploads only: not deleted, not yet removed by the retention.',
        querystring: uploadListQuery,
        response: { 200: pageSchema(uploadSchema), ...errorResponses },
      },
    },
    async (req) => {
      const caller = callerOf(req);
      const teamId = teamOf(caller, req.query.teamId);
      return listPage(
        req.query,
        (page) =>
          withUserTx(app.db, caller.id, async (tx) => {
            if (!teamId) return listUploads(tx, { userId: caller.id }, page);
            await answeringTeamRefusals(() => requireTeamRole(tx, teamId, 'viewer'));
            return listUploads(tx, { teamId }, page);
          }),
        view,
      );
    },
  );

  app.get(
    '/v1/uploads/:id',
    {
      schema: {
        tags: ['uploads'],
        summary: 'Get an upload',
        description:
          "A personal upload of the caller, or an upload of a team it belongs to; anyone else's is a 404.",
        params: idParams,
        response: { 200: uploadSchema, ...errorResponses },
      },
    },
    async (req) => {
      const row = await withUserTx(app.db, callerOf(req).id, (tx) => getUpload(tx, req.params.id));
      if (!row) throw notFound('Upload');
      return view(row);
    },
  );

  app.delete(
    '/v1/uploads/:id',
    {
      schema: {
        tags: ['uploads'],
        summary: 'Delete an upload',
        description:
          'It is gone from the API at once; its bytes are removed by the retention, unless a generation ' +
          "uses it (a generation keeps its exact input). A team upload: its maker (a member or higher) or the team's " +
          "admins delete it; a viewer, or a member on another's upload, gets 403 naming the role needed.",
        params: idParams,
        response: { 204: z.undefined(), 403: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      const deleted = await withUserTx(app.db, caller.id, async (tx) => {
        await deletableUpload(tx, caller.id, req.params.id);
        return deleteUpload(tx, req.params.id);
      });
      if (!deleted) throw notFound('Upload');
      return reply.status(204).send();
    },
  );

  app.get(
    '/v1/uploads/:id/content',
    {
      // Signed URLs work without a key (a provider fetching its input); unsigned requests need one.
      config: { public: true, crossOrigin: true },
      schema: {
        tags: ['uploads'],
        summary: "An upload's bytes",
        description:
          "With the caller's credentials: its own upload, or one of a team it belongs to (else 404). " +
          'With `expires` and `signature` (a signed URL Velro hands a provider, INPUT_IMAGE_DELIVERY=signed-url): ' +
          'no credentials; a tampered or expired signature gets 403.',
        params: idParams,
        querystring: uploadContentQuery,
        response: { 200: uploadContent, 403: problemSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const { expires, signature } = req.query;
      let upload: UploadFile | undefined;
      if (signature !== undefined || expires !== undefined) {
        const signed = checkUploadSignature(app.assetSigningKey, id, expires ?? 0, signature ?? '');
        if (signed !== 'valid') {
          throw new ApiError(
            403,
            'forbidden',
            signed === 'expired' ? 'This link has expired.' : 'Invalid link signature.',
          );
        }
        upload = await findSignedUpload(app.db, id);
      } else {
        await app.authenticate(req);
        upload = await withUserTx(app.db, callerOf(req).id, (tx) => getUpload(tx, id));
      }
      if (!upload) throw notFound('Upload');
      const object = await app.storage.get(upload.storage_key);
      if (!object) throw notFound('Upload content');
      // A stream is sent as is; the response schemas above describe only the errors.
      return (reply as FastifyReply)
        .header('content-type', upload.content_type)
        .header('content-length', object.bytes)
        .header('etag', `"${upload.sha256}"`)
        .header('cache-control', 'private, max-age=3600')
        .send(object.body);
    },
  );
};

export default uploads;
