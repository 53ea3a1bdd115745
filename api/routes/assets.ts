import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { findOwnAsset, findSignedAsset, type AssetFile } from '../../lib/assets/store';
import { checkAssetSignature } from '../../lib/auth/signed-urls';
import { withUserTx } from '../../lib/db/pool';
import { SERVABLE_MEDIA_TYPES } from '../../lib/media/probe';
import { ApiError, notFound } from '../errors';
import { callerOf } from '../plugins/auth';
import { assetContent, assetQuery } from '../schemas/assets';
import { errorResponses, idParams, problemSchema } from '../schemas/common';

const assets: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/v1/assets/:id',
    {
      // Signed URLs work without a key (that is their point); unsigned requests need one.
      // Outputs are embedded by clients' web pages (<img src>), on other origins.
      config: { public: true, crossOrigin: true },
      schema: {
        tags: ['assets'],
        summary: 'A stored output',
        description:
          'Output URLs in generations are signed and expire (ASSET_URL_TTL_SECONDS, 24 h by default): ' +
          'they work without an API key. ' +
          "Without a signature, send the owner's API key (a team generation's output: any member's key or token). " +
          'A tampered or expired signature gets 403.',
        params: idParams,
        querystring: assetQuery,
        response: {
          200: assetContent,
          403: problemSchema,
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const { expires, signature } = req.query;
      let asset: AssetFile | undefined;
      if (signature !== undefined || expires !== undefined) {
        const check = checkAssetSignature(app.assetSigningKey, id, expires ?? 0, signature ?? '');
        if (check !== 'valid') {
          throw new ApiError(
            403,
            'forbidden',
            check === 'expired' ? 'This link has expired.' : 'Invalid link signature.',
          );
        }
        // The signature is the authorisation: a read by id only, of a succeeded generation's output.
        asset = await findSignedAsset(app.db, id);
      } else {
        await app.authenticate(req);
        // Only outputs of a generation that succeeded (and so was charged) are served.
        asset = await withUserTx(app.db, callerOf(req).id, (tx) => findOwnAsset(tx, id));
      }
      // Stored only when probed as media; checked again so nothing else is ever served from this origin.
      if (!asset || !SERVABLE_MEDIA_TYPES.has(asset.content_type)) throw notFound('Asset');
      const object = await app.storage.get(asset.storage_key);
      if (!object) throw notFound('Asset content');
      // A stream is sent as is; the response schemas above describe only the errors.
      return (reply as FastifyReply)
        .header('content-type', asset.content_type)
        .header('content-length', object.bytes)
        .header('etag', `"${asset.sha256}"`)
        .header('cache-control', 'private, max-age=3600')
        .send(object.body);
    },
  );
};

export default assets;
