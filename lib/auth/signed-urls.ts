import { createHmac, timingSafeEqual } from 'node:crypto';

/** `?expires=<unix seconds>&signature=<base64url HMAC-SHA256 of "assetId.expires">` */
export function signAssetPath(key: Buffer, assetId: string, ttlSeconds: number, now = Date.now()): string {
  const expires = Math.floor(now / 1000) + ttlSeconds;
  return `/v1/assets/${assetId}?expires=${expires}&signature=${sign(key, assetId, expires)}`;
}

export type SignatureCheck = 'valid' | 'expired' | 'invalid';

export function checkAssetSignature(
  key: Buffer,
  assetId: string,
  expires: number,
  signature: string,
  now = Date.now(),
): SignatureCheck {
  const expected = Buffer.from(sign(key, assetId, expires));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid';
  return expires * 1000 < now ? 'expired' : 'valid';
}

function sign(key: Buffer, assetId: string, expires: number): string {
  return createHmac('sha256', key).update(`${assetId}.${expires}`).digest('base64url');
}

/**
 * `/v1/uploads/<id>/content?expires=<unix seconds>&signature=<base64url HMAC-SHA256 of
 * "upload:uploadId.expires">`, signed with the asset key: the `upload:` prefix keeps an asset's
 * signature (of "id.expires") from ever opening an upload, and an upload's from opening an asset.
 */
export function signUploadPath(key: Buffer, uploadId: string, ttlSeconds: number, now = Date.now()): string {
  const expires = Math.floor(now / 1000) + ttlSeconds;
  return `/v1/uploads/${uploadId}/content?expires=${expires}&signature=${sign(key, `upload:${uploadId}`, expires)}`;
}

export function checkUploadSignature(
  key: Buffer,
  uploadId: string,
  expires: number,
  signature: string,
  now = Date.now(),
): SignatureCheck {
  return checkAssetSignature(key, `upload:${uploadId}`, expires, signature, now);
}
