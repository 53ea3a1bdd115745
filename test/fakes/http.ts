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
