import { excerpt, providerFetch, transientFailure, type ProviderResponse } from './http';
import type { InputImage, ProviderInputUrl } from './input-image';
import { NonRetryableProviderError, RetryableProviderError } from './provider';

export interface ReplicateFilesOptions {
  token: string;
  /** API host, e.g. https://api.replicate.com (a fake in tests). */
  apiUrl: string;
  timeoutMs: number;
  /** Images up to this many bytes go inline as a data URI (REPLICATE_DATA_URI_MAX_BYTES). */
  dataUriMaxBytes: number;
}

/**
 * Hands an input image to Replicate: a small one inline as a `data:` URI (Replicate decodes it;
 * nothing to expire, and nothing stored at Replicate), a larger one through `POST /v1/files`
 * (multipart, field `content`), whose `urls.get` models on Replicate read with the account's token
 * until `expires_at` (24 h). Data URIs are kept small on purpose: Replicate caps them per
 * prediction, and large ones fail (replicate-python#135).
 */
export async function replicateInputUrl(
  opts: ReplicateFilesOptions,
  image: InputImage,
): Promise<ProviderInputUrl> {
  if (image.bytes.length <= opts.dataUriMaxBytes) {
    return { url: `data:${image.contentType};base64,${image.bytes.toString('base64')}`, expiresAt: null };
  }
  const form = new FormData();
  form.append(
    'content',
    new Blob([new Uint8Array(image.bytes)], { type: image.contentType }),
    image.fileName,
  );
  form.append(
    'metadata',
    new Blob([JSON.stringify({ velro: image.fileName })], { type: 'application/json' }),
  );
  const res = await providerFetch('replicate files:', `${opts.apiUrl.replace(/\/+$/, '')}/v1/files`, {
    method: 'POST',
    // No content-type: fetch sets multipart/form-data with its boundary.
    headers: { authorization: `Bearer ${opts.token}`, accept: 'application/json' },
    body: form,
    timeoutMs: opts.timeoutMs,
  });
  if (res.status < 200 || res.status >= 300) throw filesError(res);
  const file = (typeof res.json === 'object' && res.json !== null ? res.json : {}) as {
    urls?: { get?: unknown };
    expires_at?: unknown;
  };
  const url = file.urls?.get;
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
    throw new RetryableProviderError(
      'provider_bad_response',
      `replicate files: no urls.get in the answer: ${excerpt(res)}`,
    );
  }
  const expires = typeof file.expires_at === 'string' ? new Date(file.expires_at) : undefined;
  // Replicate keeps files 24 h; an answer without a readable expiry is taken as that.
  const expiresAt =
    expires && !Number.isNaN(expires.getTime()) ? expires : new Date(Date.now() + 24 * 3_600_000);
  return { url, expiresAt };
}

function filesError(res: ProviderResponse): Error {
  const body = (typeof res.json === 'object' && res.json !== null ? res.json : {}) as Record<string, unknown>;
  const transient = transientFailure('replicate', 'files', res, body.retry_after);
  if (transient) return transient;
  const detail = typeof body.detail === 'string' ? body.detail : excerpt(res);
  if (res.status === 401 || res.status === 403) {
    return new NonRetryableProviderError(
      'provider_unauthorized',
      `replicate files: the API token was refused (HTTP ${res.status}); check REPLICATE_API_TOKEN`,
    );
  }
  if (res.status === 413) {
    return new NonRetryableProviderError(
      'invalid_input',
      `Replicate refused the input image as too large (HTTP 413): ${detail}`,
    );
  }
  if (res.status === 400 || res.status === 422) {
    return new NonRetryableProviderError('invalid_input', `Replicate refused the input image: ${detail}`);
  }
  return new NonRetryableProviderError('provider_rejected', `replicate files: HTTP ${res.status}: ${detail}`);
}
