import { RetryableProviderError } from './provider';

/** A provider's Retry-After is honoured up to this; a longer one is clamped (the activity retries again). */
export const MAX_RETRY_AFTER_MS = 60_000;

/** One provider HTTP answer, read whole (provider JSON answers are small). */
export interface ProviderResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body, or undefined when it is empty or not JSON (see `malformed`). */
  json: unknown;
  /** A non-empty body that is not JSON. */
  malformed: boolean;
}

/** Longest provider answer read; anything longer is not a queue or prediction object. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * `fetch` with a hard time limit covering headers and body, no redirects unless asked (they would
 * carry the credentials elsewhere), and every network failure turned into a retryable provider error.
 */
export async function providerFetch(
  provider: string,
  url: string,
  init: RequestInit & { timeoutMs: number },
): Promise<ProviderResponse> {
  const { timeoutMs, ...rest } = init;
  const what = `${provider} ${init.method ?? 'GET'} ${new URL(url).pathname}`;
  try {
    const res = await fetch(url, { redirect: 'error', ...rest, signal: AbortSignal.timeout(timeoutMs) });
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_RESPONSE_BYTES) {
      await res.body?.cancel();
      throw new RetryableProviderError(
        'provider_bad_response',
        `${what}: answer of ${length} bytes is too large`,
      );
    }
    const text = await res.text();
    let json: unknown;
    let malformed = false;
    if (text.trim() !== '') {
      try {
        json = JSON.parse(text);
      } catch {
        malformed = true;
      }
    }
    return { status: res.status, headers: res.headers, text, json, malformed };
  } catch (err) {
    if (err instanceof RetryableProviderError) throw err;
    const name = (err as { name?: string }).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new RetryableProviderError(
        'provider_request_timeout',
        `${what}: no answer within ${timeoutMs} ms`,
      );
    }
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const detail = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
    throw new RetryableProviderError('provider_unreachable', `${what}: ${detail}`);
  }
}

/**
 * Milliseconds to wait from a Retry-After header (delta-seconds or HTTP-date) or a body hint in
 * seconds, bounded to [0, MAX_RETRY_AFTER_MS]; undefined when neither says anything usable.
 */
export function retryAfterMs(
  header: string | null | undefined,
  bodySeconds?: unknown,
  now = Date.now(),
): number | undefined {
  let ms: number | undefined;
  const value = header?.trim();
  if (value) {
    if (/^\d+(\.\d+)?$/.test(value)) ms = Number(value) * 1000;
    else {
      const at = Date.parse(value);
      if (!Number.isNaN(at)) ms = at - now;
    }
  }
  if (ms === undefined && typeof bodySeconds === 'number' && Number.isFinite(bodySeconds)) {
    ms = bodySeconds * 1000;
  }
  if (ms === undefined) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.round(ms)));
}

/** The retryable error for a transient HTTP answer (408, 429, 5xx), or undefined for any other. */
export function transientFailure(
  provider: string,
  action: string,
  res: ProviderResponse,
  bodyRetryAfter?: unknown,
): RetryableProviderError | undefined {
  const wait = retryAfterMs(res.headers.get('retry-after'), bodyRetryAfter);
  if (res.status === 429) {
    return new RetryableProviderError(
      'provider_rate_limited',
      `${provider} ${action}: rate limited (HTTP 429)${wait !== undefined ? `, retry after ${wait} ms` : ''}: ${excerpt(res)}`,
      wait,
    );
  }
  if (res.status === 408 || res.status >= 500) {
    return new RetryableProviderError(
      'provider_unavailable',
      `${provider} ${action}: HTTP ${res.status}: ${excerpt(res)}`,
      wait,
    );
  }
  return undefined;
}

/** A short, single-line piece of a provider answer for error messages. */
export function excerpt(res: Pick<ProviderResponse, 'text'>, max = 300): string {
  const flat = res.text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat || '(empty body)';
}

/** A header's single value (Node gives arrays for repeated headers). */
export function headerValue(headers: Record<string, string | string[] | undefined>, name: string) {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
