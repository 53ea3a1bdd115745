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
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
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
