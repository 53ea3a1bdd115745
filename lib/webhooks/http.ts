import http from 'node:http';
import https from 'node:https';
import {
  guardedLookup,
  parseWebhookUrl,
  WebhookUrlRefused,
  type LookupAll,
  type WebhookUrlPolicy,
} from './url-policy';

export interface WebhookPost {
  url: string;
  body: string;
  headers: Record<string, string>;
  policy: WebhookUrlPolicy;
  /** Covers connecting, the answer's headers and the bounded read of its body. */
  timeoutMs: number;
  /** Read at most this much of the answer; the rest is dropped with the connection. */
  maxResponseBytes?: number;
  /** Name resolution (tests pin it); the system resolver by default. */
  lookup?: LookupAll;
}

export type WebhookPostResult =
  /** The receiver answered (any status); `excerpt` is the start of its body. */
  | { kind: 'answer'; status: number; excerpt: string; retryAfter: string | undefined }
  /** No answer: network error, TLS failure, timeout. */
  | { kind: 'error'; error: string }
  /** The URL or the address it resolved to is not allowed (SSRF policy). */
  | { kind: 'refused'; error: string };

const EXCERPT_CHARS = 300;

/**
 * One POST of a webhook: no redirects followed, no connection reuse, the resolved address checked
 * against the policy at connect time, a hard time limit, and only the start of the answer read.
 */
export function postWebhook(p: WebhookPost): Promise<WebhookPostResult> {
  let url: URL;
  try {
    url = parseWebhookUrl(p.url, p.policy);
  } catch (err) {
    return Promise.resolve({ kind: 'refused', error: (err as Error).message });
  }
  const maxBytes = p.maxResponseBytes ?? 64 * 1024;
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: WebhookPostResult) => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const signal = AbortSignal.timeout(p.timeoutMs);
    const req = client.request(url, {
      method: 'POST',
      headers: { ...p.headers, 'content-length': String(Buffer.byteLength(p.body)) },
      agent: false,
      signal,
      ...(p.policy.allowPrivate ? {} : { lookup: guardedLookup(p.lookup) }),
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const retryAfter = [res.headers['retry-after']].flat()[0];
      const chunks: Buffer[] = [];
      let read = 0;
      const answer = () =>
        finish({
          kind: 'answer',
          status,
          excerpt: Buffer.concat(chunks).toString('utf8').slice(0, EXCERPT_CHARS),
          retryAfter,
        });
      res.on('data', (chunk: Buffer) => {
        if (read < EXCERPT_CHARS * 4) chunks.push(chunk);
        read += chunk.length;
        // Enough: the status is what counts, the body is only kept for the delivery log.
        if (read >= maxBytes) {
          answer();
          res.destroy();
        }
      });
      res.on('end', answer);
      // Cut off mid-body (time limit, reset): the status already arrived.
      res.on('error', answer);
      res.on('close', answer);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof WebhookUrlRefused) return finish({ kind: 'refused', error: err.message });
      const timedOut = signal.aborted || err.name === 'AbortError' || err.name === 'TimeoutError';
      finish({
        kind: 'error',
        error: timedOut ? `no answer within ${p.timeoutMs} ms` : `${err.code ?? err.name}: ${err.message}`,
      });
    });
    req.end(p.body);
  });
}
