import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../../lib/providers/local/png';
import {
  fetchInputImage,
  fetchWithHopPolicy,
  InputImageRefused,
  InputImageUnavailable,
} from '../../lib/uploads/fetch-image';
import type { LookupAll, WebhookUrlPolicy } from '../../lib/webhooks/url-policy';

const development: WebhookUrlPolicy = { requireHttps: false, allowPrivate: true };
const strictButHttp: WebhookUrlPolicy = { requireHttps: false, allowPrivate: false };

function png(width: number, height: number): Buffer {
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < rgba.length; i += 4) rgba.set([i % 256, 80, 160, 255], i);
  return encodePng(width, height, rgba);
}

const PNG = png(32, 24);
const BIG = png(400, 400);

/** Name resolution with fixed answers; any other name does not exist. */
const fakeDns =
  (answers: Record<string, string[]>): LookupAll =>
  async (hostname) => {
    const addresses = answers[hostname];
    if (!addresses)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => void;

describe('fetchInputImage: copying a client image URL', () => {
  let server: http.Server;
  let base: string;
  const routes = new Map<string, Route>();
  const hits = new Map<string, number>();
  /** Bytes the server managed to write for /big before the client hung up. */
  let bigWritten = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const path = req.url ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const route = routes.get(path);
      if (route) route(req, res);
      else res.writeHead(404).end('no such image');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    routes.set('/cat.png', (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(PNG));
    routes.set('/gone', (_req, res) => res.writeHead(410).end());
    routes.set('/busy', (_req, res) => res.writeHead(503, { 'retry-after': '5' }).end('later'));
    routes.set('/text', (_req, res) =>
      res.writeHead(200, { 'content-type': 'image/png' }).end('<html>not an image</html>'),
    );
    routes.set('/to-private', (_req, res) =>
      res.writeHead(302, { location: 'http://10.0.0.7/cat.png' }).end(),
    );
    routes.set('/to-cat', (_req, res) => res.writeHead(301, { location: '/cat.png' }).end());
    for (let i = 0; i < 5; i++) {
      routes.set(`/loop${i}`, (_req, res) => res.writeHead(302, { location: `/loop${i + 1}` }).end());
    }
    routes.set('/big', (_req, res) => {
      // No Content-Length: the cap must hold while streaming. Writes 64 KiB chunks until the
      // client goes away, at most 8 MiB.
      res.writeHead(200, { 'content-type': 'image/png' });
      bigWritten = 0;
      const chunk = Buffer.concat([BIG.subarray(0, 64), Buffer.alloc(64 * 1024 - 64)]);
      const write = () => {
        while (bigWritten < 8 * 1024 * 1024 && !res.destroyed) {
          bigWritten += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', write);
        }
        res.end();
      };
      res.on('close', () => (bigWritten = Math.min(bigWritten, 8 * 1024 * 1024)));
      write();
    });
    routes.set('/slow', () => {
      // Never answers.
    });
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  const opts = { timeoutMs: 2000, maxBytes: 1024 * 1024, maxPixels: 1_000_000 };
  const fetch = (path: string, policy = development, lookup?: LookupAll) =>
    fetchInputImage(path.startsWith('http') ? path : base + path, { ...opts, policy, lookup });

  it('returns the image, its type and size as decoded, and its sha256', async () => {
    const image = await fetch('/cat.png');
    expect(image).toMatchObject({ contentType: 'image/png', width: 32, height: 24 });
    expect(image.bytes.equals(PNG)).toBe(true);
    expect(image.sha256).toBe(createHash('sha256').update(PNG).digest('hex'));
  });

  it('follows a redirect, and re-checks where it leads: a private address is refused', async () => {
    expect((await fetch('/to-cat')).width).toBe(32);
    // The local server stands in for a public host (hop 0); the redirect is judged strictly.
    const policyFor = (hop: number) => (hop === 0 ? development : strictButHttp);
    await expect(fetchWithHopPolicy(`${base}/to-private`, opts, policyFor)).rejects.toThrow(
      new InputImageRefused('http://10.0.0.7/cat.png: 10.0.0.7 is a private address'),
    );
    // Same with the plain function and one strict policy: the first hop is refused, nothing fetched.
    const before = hits.get('/to-private') ?? 0;
    await expect(fetch('/to-private', strictButHttp)).rejects.toBeInstanceOf(InputImageRefused);
    expect(hits.get('/to-private') ?? 0).toBe(before);
  });

  it('gives up after 3 redirects', async () => {
    routes.set('/loop4', (_req, res) => res.writeHead(200).end(PNG));
    // loop0 → loop1 → loop2 → loop3: three redirects, then the image.
    routes.set('/loop3', (_req, res) => res.writeHead(200).end(PNG));
    expect((await fetch('/loop0')).width).toBe(32);
    routes.set('/loop3', (_req, res) => res.writeHead(302, { location: '/loop4' }).end());
    await expect(fetch('/loop0')).rejects.toThrow(new InputImageRefused('more than 3 redirects'));
    expect(hits.get('/loop4') ?? 0).toBe(0);
  });

  it('stops reading an image over maxBytes, declared or not', async () => {
    await expect(fetch('/big')).rejects.toThrow(/larger than 1048576 bytes/);
    // The client hung up early: far less than the 8 MiB the server would have sent.
    await new Promise((r) => setTimeout(r, 50));
    expect(bigWritten).toBeLessThan(4 * 1024 * 1024);
    routes.set('/declared-big', (_req, res) =>
      res.writeHead(200, { 'content-length': String(2 * 1024 * 1024) }).end(Buffer.alloc(2 * 1024 * 1024)),
    );
    await expect(fetch('/declared-big')).rejects.toBeInstanceOf(InputImageRefused);
  });

  it('refuses what is not an image, whatever its Content-Type says', async () => {
    const err = await fetch('/text').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputImageRefused);
  });

  it('refuses an image over the pixel cap', async () => {
    routes.set('/huge.png', (_req, res) => res.writeHead(200).end(BIG));
    await expect(
      fetchInputImage(`${base}/huge.png`, { ...opts, maxPixels: 100_000, policy: development }),
    ).rejects.toBeInstanceOf(InputImageRefused);
  });

  it('treats 404 and 410 as refused, 503 as unavailable', async () => {
    await expect(fetch('/missing.png')).rejects.toThrow(
      new InputImageRefused(`${base}/missing.png: HTTP 404`),
    );
    await expect(fetch('/gone')).rejects.toBeInstanceOf(InputImageRefused);
    await expect(fetch('/busy')).rejects.toThrow(new InputImageUnavailable(`${base}/busy: HTTP 503`));
  });

  it('gives up on a server that does not answer in time: unavailable', async () => {
    const started = Date.now();
    await expect(
      fetchInputImage(`${base}/slow`, { ...opts, timeoutMs: 300, policy: development }),
    ).rejects.toThrow(new InputImageUnavailable(`${base}/slow: no image within 300 ms`));
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('treats a connection reset mid-body as unavailable', async () => {
    routes.set('/reset', (req, res) => {
      res.writeHead(200, { 'content-length': String(PNG.length) });
      res.write(PNG.subarray(0, 20));
      setTimeout(() => req.socket.destroy(), 20);
    });
    await expect(fetch('/reset')).rejects.toBeInstanceOf(InputImageUnavailable);
  });

  it('checks the address it connects to: a name resolving to a private address is refused', async () => {
    const port = (server.address() as AddressInfo).port;
    const dns = fakeDns({ 'images.example.com': ['93.184.216.34', '127.0.0.1'] });
    const before = hits.get('/cat.png') ?? 0;
    await expect(fetch(`http://images.example.com:${port}/cat.png`, strictButHttp, dns)).rejects.toThrow(
      /images\.example\.com resolves to 127\.0\.0\.1, a loopback address/,
    );
    expect(hits.get('/cat.png') ?? 0).toBe(before);
    // And the policy's form rules: https in production, no internal IP literal.
    await expect(fetch('/cat.png', { requireHttps: true, allowPrivate: true })).rejects.toThrow(/https/);
    await expect(fetch('http://169.254.169.254/latest', strictButHttp)).rejects.toThrow(/link-local/);
  });
});
