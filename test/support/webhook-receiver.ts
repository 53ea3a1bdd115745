import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

/** How the receiver answers the n-th request (0-based) to a path: a status, and optional headers. */
export type Responder = (
  n: number,
  req: ReceivedWebhook,
) => { status: number; headers?: Record<string, string> };

/**
 * A webhook receiver on 127.0.0.1 that records every request. Each path answers with its own
 * responder (204 by default), so one receiver serves several endpoints in a test.
 */
export async function startWebhookReceiver() {
  const received: ReceivedWebhook[] = [];
  const responders = new Map<string, Responder>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const hook: ReceivedWebhook = {
        path,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      };
      const n = received.filter((r) => r.path === path).length;
      received.push(hook);
      const respond: Responder = responders.get(path) ?? (() => ({ status: 204 }));
      const answer = respond(n, hook);
      res.writeHead(answer.status, answer.headers).end(answer.status === 204 ? undefined : 'nope');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    /** A URL on this receiver whose requests `respond` answers. */
    url(path: string, respond?: Responder): string {
      if (respond) responders.set(path, respond);
      return `http://127.0.0.1:${port}${path}`;
    },
    received,
    at(path: string): ReceivedWebhook[] {
      return received.filter((r) => r.path === path);
    },
    close(): Promise<void> {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export type WebhookReceiver = Awaited<ReturnType<typeof startWebhookReceiver>>;
