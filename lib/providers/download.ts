import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

export interface DownloadPolicy {
  allowedHosts: string[];
  allowLoopback: boolean;
  timeoutMs: number;
}

export class DownloadRefused extends Error {}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Whether a provider output URL may be fetched: https from a known host (or loopback when PROVIDER_OUTPUT_ALLOW_LOOPBACK). */
export function checkOutputUrl(raw: string, policy: DownloadPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DownloadRefused(`not a URL: ${raw.slice(0, 100)}`);
  }
  if (policy.allowLoopback && LOOPBACK.has(url.hostname) && /^https?:$/.test(url.protocol)) return url;
  if (url.protocol !== 'https:') throw new DownloadRefused(`only https outputs are fetched: ${url.origin}`);
  const host = url.hostname.toLowerCase();
  const known = policy.allowedHosts.some((h) => host === h || (h.startsWith('.') && host.endsWith(h)));
  if (!known) throw new DownloadRefused(`output host ${host} is not in the allowed list`);
  return url;
}

/** Opens a provider output for streaming, following at most 3 redirects, each checked again. */
export async function openDownload(
  raw: string,
  policy: DownloadPolicy,
): Promise<{ body: Readable; contentType: string | undefined; status: number }> {
  let url = checkOutputUrl(raw, policy);
  const signal = AbortSignal.timeout(policy.timeoutMs);
  for (let hop = 0; hop <= 3; hop++) {
    const res = await fetch(url, { redirect: 'manual', signal });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      url = checkOutputUrl(new URL(location, url).toString(), policy);
      continue;
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      return { body: Readable.from([]), contentType: undefined, status: res.status };
    }
    return {
      body: Readable.fromWeb(res.body as unknown as WebReadableStream),
      contentType: res.headers.get('content-type') ?? undefined,
      status: res.status,
    };
  }
  throw new DownloadRefused('too many redirects');
}
