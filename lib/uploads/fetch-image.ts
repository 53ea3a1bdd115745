import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { checkImage, type InputImageType } from '../media/image-check';
import {
  guardedLookup,
  parseWebhookUrl,
  WebhookHostUnresolved,
  WebhookUrlRefused,
  type LookupAll,
  type WebhookUrlPolicy,
} from '../webhooks/url-policy';

// Copies an image a client gave by URL, under the rules of outgoing webhooks: every hop's URL is
// checked, and so is the address each connection goes to (guardedLookup: no DNS rebinding), at
// most MAX_REDIRECTS redirects, one time limit over all of it, and no more than maxBytes read.

/** Permanent: the URL will not give an image (4xx, a private address, not an image, too big). */
export class InputImageRefused extends Error {
  override readonly name = 'InputImageRefused';
}

/** Transient: it may work later (5xx, 408/429, a timeout, a reset connection, DNS not answering). */
export class InputImageUnavailable extends Error {
  override readonly name = 'InputImageUnavailable';
}

export interface FetchImageOptions {
  policy: WebhookUrlPolicy;
  /** Name resolution (tests pin it); the system resolver by default. */
  lookup?: LookupAll;
  /** Covers every hop: connecting, the headers and the whole body. */
  timeoutMs: number;
  maxBytes: number;
  maxPixels: number;
}

export interface FetchedImage {
  bytes: Buffer;
  contentType: InputImageType;
  width: number;
  height: number;
  sha256: string;
}

const MAX_REDIRECTS = 3;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

type Hop = { kind: 'redirect'; location: string } | { kind: 'body'; bytes: Buffer };

/** The URL's image, checked by its content; see InputImageRefused / InputImageUnavailable. */
export function fetchInputImage(url: string, opts: FetchImageOptions): Promise<FetchedImage> {
  return fetchWithHopPolicy(url, opts, () => opts.policy);
}

/**
 * fetchInputImage with the policy chosen per hop (0 is the URL given). Production passes one
 * policy for all; tests use it to let a local server stand in for a public first hop and check
 * that a redirect is judged again.
 */
export async function fetchWithHopPolicy(
  url: string,
  opts: Omit<FetchImageOptions, 'policy'>,
  policyFor: (hop: number) => WebhookUrlPolicy,
): Promise<FetchedImage> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const answer = await getOnce(current, policyFor(hop), opts, signal);
    if (answer.kind === 'body') return checked(answer.bytes, opts.maxPixels);
    current = new URL(answer.location, current).toString();
  }
  throw new InputImageRefused(`more than ${MAX_REDIRECTS} redirects`);
}

function checked(bytes: Buffer, maxPixels: number): FetchedImage {
  const check = checkImage(bytes, { maxPixels });
  if (!check.ok) throw new InputImageRefused(check.message);
  return {
    bytes,
    contentType: check.contentType,
    width: check.width,
    height: check.height,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}

/** One GET: a redirect to follow, or the whole body of a 2xx; anything else throws. */
function getOnce(
  raw: string,
  policy: WebhookUrlPolicy,
  opts: Omit<FetchImageOptions, 'policy'>,
  signal: AbortSignal,
): Promise<Hop> {
  let url: URL;
  try {
    url = parseWebhookUrl(raw, policy);
  } catch (err) {
    return Promise.reject(new InputImageRefused(`${safeUrl(raw)}: ${(err as Error).message}`));
  }
  const where = safeUrl(url.toString());
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<Hop>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(err);
    };
    const req = client.request(url, {
      method: 'GET',
      headers: { accept: 'image/png, image/jpeg, image/webp', 'user-agent': 'Velro input fetcher' },
      // A fresh connection per hop, so the address checked is the address used.
      agent: false,
      signal,
      ...(policy.allowPrivate ? {} : { lookup: guardedLookup(opts.lookup) }),
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (REDIRECTS.has(status)) {
        res.resume();
        const location = res.headers.location;
        if (!location) return fail(new InputImageRefused(`${where}: HTTP ${status} without a Location`));
        settled = true;
        req.destroy();
        return resolve({ kind: 'redirect', location });
      }
      if (status < 200 || status >= 300) {
        res.resume();
        return fail(statusError(where, status));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        return fail(tooBig(where, opts.maxBytes));
      }
      const chunks: Buffer[] = [];
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        // Stop reading at once: the rest is never downloaded.
        if (read > opts.maxBytes) return fail(tooBig(where, opts.maxBytes));
        chunks.push(chunk);
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve({ kind: 'body', bytes: Buffer.concat(chunks) });
      });
      res.on('error', (err) => fail(networkError(where, err, signal, opts.timeoutMs)));
      res.on('close', () => {
        if (!res.complete)
          fail(networkError(where, new Error('connection closed mid-body'), signal, opts.timeoutMs));
      });
    });
    req.on('error', (err) => fail(networkError(where, err, signal, opts.timeoutMs)));
    req.end();
  });
}

function statusError(where: string, status: number): Error {
  // 408 and 429 are the server's way of saying "not now"; other 4xx will not change.
  if (status >= 500 || status === 408 || status === 429) {
    return new InputImageUnavailable(`${where}: HTTP ${status}`);
  }
  return new InputImageRefused(`${where}: HTTP ${status}`);
}

function tooBig(where: string, maxBytes: number): InputImageRefused {
  return new InputImageRefused(`${where}: larger than ${maxBytes} bytes`);
}

function networkError(where: string, err: Error, signal: AbortSignal, timeoutMs: number): Error {
  if (err instanceof WebhookUrlRefused) return new InputImageRefused(`${where}: ${err.message}`);
  if (err instanceof WebhookHostUnresolved) return new InputImageUnavailable(`${where}: ${err.message}`);
  if (signal.aborted || err.name === 'AbortError' || err.name === 'TimeoutError') {
    return new InputImageUnavailable(`${where}: no image within ${timeoutMs} ms`);
  }
  const code = (err as NodeJS.ErrnoException).code;
  return new InputImageUnavailable(`${where}: ${code ?? err.name}: ${err.message}`);
}

/** The URL for messages: no credentials, no query (it may hold a signature), at most 200 characters. */
function safeUrl(raw: string): string {
  try {
    const url = new URL(raw);
    return `${url.protocol}//${url.host}${url.pathname}`.slice(0, 200);
  } catch {
    return raw.slice(0, 200);
  }
}
