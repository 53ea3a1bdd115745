import { excerpt, providerFetch, transientFailure, type ProviderResponse } from './http';
import type { InputImage, ProviderInputUrl } from './input-image';
import { NonRetryableProviderError, RetryableProviderError } from './provider';

export interface FalStorageOptions {
  key: string;
  /** fal's REST host, e.g. https://rest.fal.ai (FAL_STORAGE_URL; a fake in tests). */
  storageUrl: string;
  /** Time limit of the initiate call and of the PUT, each. */
  timeoutMs: number;
  /** How long fal keeps the file (X-Fal-Object-Lifecycle); the URL is recorded as expiring then. */
  lifetimeSeconds: number;
  now?: () => number;
}

/** Default life of an input on fal's CDN: longer than any generation's deadline with its retries. */
export const FAL_INPUT_LIFETIME_SECONDS = 7 * 86_400;

/**
 * Uploads an input image to fal's storage as fal's own client does (libs/client/src/storage.ts):
 * `POST /storage/upload/initiate` with the key gives a one-time `upload_url` and the `file_url`
 * models read; the bytes then go by PUT to `upload_url`, which carries its own authorization (no
 * key: it may point at a bucket, not at fal). fal-js switches to multipart above ~90 MB; input
 * images are at most UPLOAD_MAX_BYTES (20 MiB by default), so one PUT always does.
 *
 * A refused or expired `upload_url` (400/403 on the PUT) is retryable: the next attempt initiates
 * again and gets a fresh one.
 */
export async function uploadToFalStorage(
  opts: FalStorageOptions,
  image: InputImage,
): Promise<ProviderInputUrl> {
  const base = opts.storageUrl.replace(/\/+$/, '');
  const initiated = await providerFetch(
    'fal storage initiate:',
    `${base}/storage/upload/initiate?storage_type=fal-cdn-v3`,
    {
      method: 'POST',
      headers: {
        authorization: `Key ${opts.key}`,
        accept: 'application/json',
        'content-type': 'application/json',
        'x-fal-object-lifecycle': JSON.stringify({ expiration_duration_seconds: opts.lifetimeSeconds }),
      },
      body: JSON.stringify({ content_type: image.contentType, file_name: image.fileName }),
      timeoutMs: opts.timeoutMs,
    },
  );
  if (initiated.status < 200 || initiated.status >= 300) throw initiateError(initiated);
  const body = (typeof initiated.json === 'object' && initiated.json !== null ? initiated.json : {}) as {
    upload_url?: unknown;
    file_url?: unknown;
  };
  if (!isHttpUrl(body.upload_url) || !isHttpUrl(body.file_url)) {
    throw new RetryableProviderError(
      'provider_bad_response',
      `fal storage initiate: no upload_url and file_url in the answer: ${excerpt(initiated)}`,
    );
  }

  const put = await providerFetch('fal storage upload:', body.upload_url, {
    method: 'PUT',
    headers: { 'content-type': image.contentType },
    body: image.bytes,
    timeoutMs: opts.timeoutMs,
  });
  if (put.status < 200 || put.status >= 300) throw putError(put);
  const now = opts.now?.() ?? Date.now();
  return { url: body.file_url, expiresAt: new Date(now + opts.lifetimeSeconds * 1000) };
}

function initiateError(res: ProviderResponse): Error {
  const transient = transientFailure('fal', 'storage initiate', res);
  if (transient) return transient;
  if (res.status === 401 || res.status === 403) {
    return new NonRetryableProviderError(
      'provider_unauthorized',
      `fal storage initiate: the API key was refused (HTTP ${res.status}); check FAL_KEY`,
    );
  }
  if (res.status === 413) return tooLarge(res);
  return new NonRetryableProviderError(
    'provider_rejected',
    `fal storage initiate: HTTP ${res.status}: ${excerpt(res)}`,
  );
}

function putError(res: ProviderResponse): Error {
  if (res.status === 413) return tooLarge(res);
  const transient = transientFailure('fal', 'storage upload', res);
  if (transient) return transient;
  // A signed upload URL that expired or was refused: a new initiate gives a new one.
  if (res.status === 400 || res.status === 401 || res.status === 403 || res.status === 404) {
    return new RetryableProviderError(
      'provider_upload_refused',
      `fal storage upload: the upload URL was refused (HTTP ${res.status}): ${excerpt(res)}`,
    );
  }
  return new NonRetryableProviderError(
    'provider_rejected',
    `fal storage upload: HTTP ${res.status}: ${excerpt(res)}`,
  );
}

function tooLarge(res: ProviderResponse): Error {
  return new NonRetryableProviderError(
    'invalid_input',
    `fal refused the input image as too large (HTTP 413): ${excerpt(res)}`,
  );
}

function isHttpUrl(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  try {
    const u = new URL(v);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}
