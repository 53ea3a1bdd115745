import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderImage } from '../../lib/providers/local/render';

/** One request a fake received, as it arrived. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  /** The body's bytes (uploads are binary). */
  raw: Buffer;
  at: number;
}

/** One webhook a fake sent, and what Velro answered. */
export interface Delivery {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Velro's HTTP status, or the network error. */
  status: number | string;
  at: number;
}

/** A file a fake serves as a provider output. */
export interface ServedFile {
  bytes: Buffer;
  contentType: string;
  sha256: string;
}

export type Handler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

/** Starts `handler` on 127.0.0.1:0, recording every request; `close` also drops hung requests. */
export async function startFakeServer(
  handler: Handler,
): Promise<{ url: string; server: Server; requests: RecordedRequest[]; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const raw = Buffer.concat(chunks);
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: raw.toString('utf8'),
        raw,
        at: Date.now(),
      };
      requests.push(recorded);
      Promise.resolve(handler(recorded, res)).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { detail: String(err) });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** An ingress error page, as a load balancer in front of a provider answers it (not the provider's JSON). */
export function sendGatewayError(res: ServerResponse, status: number): void {
  sendText(res, status, `<html><body><h1>${status}</h1>nginx</body></html>`, { 'content-type': 'text/html' });
}

/** A real PNG, rendered from the prompt as the local provider does. */
export function renderOutput(prompt: string, seed: number, width = 64, height = 64): ServedFile {
  const media = renderImage({ prompt, seed, width, height });
  return {
    bytes: media.bytes,
    contentType: media.contentType,
    sha256: createHash('sha256').update(media.bytes).digest('hex'),
  };
}

/** Fault tokens in a prompt: `#submit-429 a cat` → {'submit-429'}. */
export function faultsIn(prompt: unknown): Set<string> {
  return new Set(typeof prompt === 'string' ? [...prompt.matchAll(/#([a-z0-9-]+)/g)].map((m) => m[1]!) : []);
}

/** POSTs a webhook and records the answer (never throws). */
export async function deliver(
  deliveries: Delivery[],
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<void> {
  const delivery: Delivery = { url, headers, body, status: 'pending', at: Date.now() };
  deliveries.push(delivery);
  try {
    const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    delivery.status = res.status;
  } catch (err) {
    delivery.status = err instanceof Error ? err.message : String(err);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counts calls per key (e.g. submits per prompt): 1 for the first. */
export function attemptCounter(): (key: string) => number {
  const counts = new Map<string, number>();
  return (key) => {
    const attempt = (counts.get(key) ?? 0) + 1;
    counts.set(key, attempt);
    return attempt;
  };
}

/**
 * The faults a fake puts on the first status read of a job, asked for as `#<prefix>-500` (a 500
 * gateway page), `#<prefix>-hang` (no answer for `hangMs`, then a 504 if still connected) and
 * `#<prefix>-malformed` (a 200 with the truncated JSON `truncated`). Answers and returns true when
 * one applies; returns false for a normal answer.
 */
export async function firstReadFault(
  res: ServerResponse,
  faults: Set<string>,
  prefix: string,
  opts: { hangMs: number; truncated: string },
): Promise<boolean> {
  if (faults.has(`${prefix}-500`)) {
    sendGatewayError(res, 500);
  } else if (faults.has(`${prefix}-hang`)) {
    await sleep(opts.hangMs);
    if (!res.destroyed) sendGatewayError(res, 504);
  } else if (faults.has(`${prefix}-malformed`)) {
    sendText(res, 200, opts.truncated, { 'content-type': 'application/json' });
  } else {
    return false;
  }
  return true;
}

/** What a test reads of every fake provider: its URL, what it received, what it sent. */
export interface FakeProviderHandle {
  url: string;
  requests: RecordedRequest[];
  deliveries: Delivery[];
  close(): Promise<void>;
}

/**
 * What every fake provider keeps beside its jobs: the server recording each request, the output
 * files it serves at `GET /files/…` (before `handler` sees the request), the webhooks it has sent
 * and the timers of those still to send. `close` stops the timers, the deliveries and the server.
 */
export interface FakeProvider {
  /** The server's base URL, once `listen` has resolved. */
  readonly url: string;
  readonly requests: RecordedRequest[];
  readonly deliveries: Delivery[];
  readonly closed: boolean;
  listen(handler: Handler): Promise<void>;
  /** Serves `file` at `url` (one of this server's) from now on. */
  serveFile(url: string, file: ServedFile): void;
  /** The file served at `url`, if it is one of this server's. */
  servedFile(url: string): ServedFile | undefined;
  /** Runs `fn` after `ms`, unless the fake is closed first. */
  schedule(fn: () => void, ms: number): void;
  /**
   * POSTs a webhook `copies` times, 1.1 s apart, each with the headers `sign` makes at that moment
   * (a new timestamp, as providers' retries have), until the fake is closed.
   */
  sendWebhook(url: string, body: string, sign: () => Record<string, string>, copies: number): Promise<void>;
  close(): Promise<void>;
  /** The handle a fake returns, once listening. */
  handle(): FakeProviderHandle;
}

export function fakeProvider(opts: { fileNotFound(res: ServerResponse): void }): FakeProvider {
  const files = new Map<string, ServedFile>();
  const timers = new Set<NodeJS.Timeout>();
  const deliveries: Delivery[] = [];
  let server: Awaited<ReturnType<typeof startFakeServer>> | undefined;
  let closed = false;
  return {
    get url() {
      return server?.url ?? '';
    },
    get requests() {
      return server?.requests ?? [];
    },
    deliveries,
    get closed() {
      return closed;
    },
    async listen(handler) {
      server = await startFakeServer((req, res) => {
        if (req.method === 'GET' && req.path.startsWith('/files/')) {
          const file = files.get(req.path);
          if (!file) return opts.fileNotFound(res);
          res.writeHead(200, { 'content-type': file.contentType, 'content-length': file.bytes.length });
          return void res.end(file.bytes);
        }
        return handler(req, res);
      });
    },
    serveFile(url, file) {
      files.set(new URL(url).pathname, file);
    },
    servedFile(url) {
      if (!server || !url.startsWith(`${server.url}/`)) return undefined;
      return files.get(new URL(url).pathname);
    },
    schedule(fn, ms) {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
    },
    async sendWebhook(url, body, sign, copies) {
      for (let i = 0; i < copies && !closed; i++) {
        if (i > 0) await sleep(1100);
        await deliver(deliveries, url, sign(), body);
      }
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      await server?.close();
    },
    handle() {
      if (!server) throw new Error('the fake is not listening yet');
      return { url: server.url, requests: server.requests, deliveries, close: () => this.close() };
    },
  };
}

/** An input image a fake provider read, as its model would: its bytes, or why it could not. */
export type InputImageRead =
  | { ok: true; url: string; bytes: Buffer; contentType: string; sha256: string }
  | { ok: false; url: string; reason: string };

/** The image type by magic bytes, as a model's loader decides (PNG, JPEG, WebP), or undefined. */
export function imageTypeOf(bytes: Buffer): string | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return 'image/png';
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (
    bytes.subarray(0, 4).toString('latin1') === 'RIFF' &&
    bytes.subarray(8, 12).toString('latin1') === 'WEBP'
  )
    return 'image/webp';
  return undefined;
}

/**
 * Reads an input image as a provider's model does: a `data:` URI decoded, a file of the fake's own
 * looked up (`own`), anything else fetched over HTTP (5 s, `rewrite` may point a public origin at a
 * local server). Not an image, not there, not reachable: `ok: false` with the reason.
 */
export async function readInputImage(
  url: string,
  opts: { own?: (url: string) => ServedFile | undefined; rewrite?: (url: string) => string } = {},
): Promise<InputImageRead> {
  const found = (bytes: Buffer): InputImageRead => {
    const contentType = imageTypeOf(bytes);
    if (!contentType) return { ok: false, url, reason: 'cannot identify image file' };
    return { ok: true, url, bytes, contentType, sha256: createHash('sha256').update(bytes).digest('hex') };
  };
  const data = /^data:([a-z]+\/[a-z0-9.+-]+);base64,(.*)$/is.exec(url);
  if (data) return found(Buffer.from(data[2]!, 'base64'));
  if (url.startsWith('data:')) return { ok: false, url, reason: 'malformed data URI' };
  const own = opts.own?.(url);
  if (own) return found(own.bytes);
  let target: URL;
  try {
    target = new URL(opts.rewrite ? opts.rewrite(url) : url);
  } catch {
    return { ok: false, url, reason: 'not a URL' };
  }
  try {
    const res = await fetch(target, { signal: AbortSignal.timeout(5000) });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) return { ok: false, url, reason: `HTTP ${res.status}` };
    return found(bytes);
  } catch (err) {
    return { ok: false, url, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** The parts of a multipart/form-data body, by field name (enough of RFC 7578 for the fakes). */
export function parseMultipart(
  contentType: string | undefined,
  raw: Buffer,
): Map<string, { filename?: string; contentType?: string; data: Buffer }> | undefined {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType ?? '');
  if (!/^multipart\/form-data/i.test(contentType ?? '') || !boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const parts = new Map<string, { filename?: string; contentType?: string; data: Buffer }>();
  let at = raw.indexOf(delimiter);
  while (at !== -1) {
    const start = at + delimiter.length;
    if (raw.subarray(start, start + 2).toString() === '--') break;
    const next = raw.indexOf(delimiter, start);
    if (next === -1) return undefined;
    const part = raw.subarray(start + 2, next - 2); // after CRLF, before CRLF--boundary
    const split = part.indexOf('\r\n\r\n');
    if (split === -1) return undefined;
    const head = part.subarray(0, split).toString('utf8');
    const disposition = /content-disposition:[^\r\n]*\bname="([^"]*)"(?:;\s*filename="([^"]*)")?/i.exec(head);
    if (disposition) {
      parts.set(disposition[1]!, {
        filename: disposition[2],
        contentType: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1]?.trim(),
        data: part.subarray(split + 4),
      });
    }
    at = next;
  }
  return parts;
}
