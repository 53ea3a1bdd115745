// The cluster's one port in front of its API replicas (lib/dev/round-robin-proxy.ts), over real HTTP.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../lib/net/free-port';
import { startRoundRobinProxy, type RoundRobinProxy } from '../../lib/dev/round-robin-proxy';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function upstream(handler: Handler): Promise<{ host: string; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

async function proxyTo(upstreams: { host: string; port: number }[]): Promise<RoundRobinProxy> {
  const proxy = await startRoundRobinProxy({ upstreams, port: 0, connectTimeoutMs: 1_000 });
  cleanups.push(proxy.close);
  return proxy;
}

const named =
  (name: string): Handler =>
  (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name, forwardedFor: req.headers['x-forwarded-for'] ?? null }));
  };

describe('round-robin proxy', () => {
  it('sends requests to the replicas in turn and passes X-Forwarded-For', async () => {
    const proxy = await proxyTo([await upstream(named('a')), await upstream(named('b'))]);
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${proxy.url}/health`, { signal: AbortSignal.timeout(5_000) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { name: string; forwardedFor: string };
      seen.push(body.name);
      expect(body.forwardedFor).toBe('127.0.0.1');
    }
    expect(seen).toEqual(['a', 'b', 'a', 'b']);

    // A client's own X-Forwarded-For is kept, and the proxy's peer appended after it.
    const res = await fetch(`${proxy.url}/`, {
      headers: { 'x-forwarded-for': '203.0.113.9' },
      signal: AbortSignal.timeout(5_000),
    });
    expect(((await res.json()) as { forwardedFor: string }).forwardedFor).toBe('203.0.113.9, 127.0.0.1');
  });

  it('passes request bodies through unchanged, fixed-length and streamed', async () => {
    const echoDigest: Handler = (req, res) => {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            method: req.method,
            length,
            sha256: hash.digest('hex'),
            type: req.headers['content-type'],
          }),
        );
      });
    };
    const proxy = await proxyTo([await upstream(echoDigest), await upstream(echoDigest)]);
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const expected = createHash('sha256').update(body).digest('hex');

    const fixed = await fetch(`${proxy.url}/v1/uploads`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    expect(await fixed.json()).toEqual({
      method: 'PUT',
      length: body.length,
      sha256: expected,
      type: 'application/octet-stream',
    });

    const chunks = [body.subarray(0, 1000), body.subarray(1000)];
    const streamed = await fetch(`${proxy.url}/v1/generations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        pull(controller) {
          const next = chunks.shift();
          if (next) controller.enqueue(next);
          else controller.close();
        },
      }),
      duplex: 'half',
      signal: AbortSignal.timeout(10_000),
    } as RequestInit);
    expect(await streamed.json()).toEqual({
      method: 'POST',
      length: body.length,
      sha256: expected,
      type: 'application/json',
    });
  });

  it('streams an event stream as it is written, and closes the upstream when the client leaves', async () => {
    let releaseSecond!: () => void;
    const secondMayGo = new Promise<void>((resolve) => (releaseSecond = resolve));
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
    const sse: Handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('id: 1\nevent: status\ndata: {"status":"queued"}\n\n');
      void secondMayGo.then(() => res.write('id: 2\nevent: status\ndata: {"status":"running"}\n\n'));
      res.on('close', () => upstreamClosed());
    };
    const proxy = await proxyTo([await upstream(sse)]);

    const res = await fetch(`${proxy.url}/v1/generations/x/events`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const readUntil = async (needle: string) => {
      let text = '';
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}; got ${text}`);
        text += decoder.decode(value, { stream: true });
      }
      return text;
    };
    // The first event arrives while the upstream is still holding the second: nothing is buffered.
    expect(await readUntil('queued')).toContain('id: 1');
    releaseSecond();
    expect(await readUntil('running')).toContain('id: 2');

    await reader.cancel();
    await expect(
      Promise.race([
        closed.then(() => 'closed'),
        new Promise((r) => setTimeout(() => r('still open'), 5_000)),
      ]),
    ).resolves.toBe('closed');
  });

  it('skips a replica that is down', async () => {
    const down = { host: '127.0.0.1', port: await freePort() };
    const proxy = await proxyTo([down, await upstream(named('b'))]);
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${proxy.url}/health`, { signal: AbortSignal.timeout(5_000) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { name: string }).name).toBe('b');
    }
  });

  it('sends a GET whose replica dies before answering to the next one, but answers a POST 502', async () => {
    // A replica that accepts the request and then drops the connection without answering (kill -9).
    const dies: Handler = (req) => req.socket.destroy();
    const proxy = await proxyTo([await upstream(dies), await upstream(named('b'))]);
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${proxy.url}/v1/generations/x`, { signal: AbortSignal.timeout(5_000) });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { name: string }).name).toBe('b');
    }
    // A POST may have had its effect on the replica that died: only the client can decide to retry.
    const answers: number[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${proxy.url}/v1/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
        signal: AbortSignal.timeout(5_000),
      });
      answers.push(res.status);
      await res.arrayBuffer();
    }
    expect(answers.sort()).toEqual([200, 502]);
  });

  it('answers 502 problem+json when no replica is up', async () => {
    const proxy = await proxyTo([
      { host: '127.0.0.1', port: await freePort() },
      { host: '127.0.0.1', port: await freePort() },
    ]);
    const res = await fetch(`${proxy.url}/v1/credits`, {
      method: 'POST',
      body: 'x',
      signal: AbortSignal.timeout(5_000),
    });
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({
      status: 502,
      code: 'bad_gateway',
      type: 'urn:velro:error:bad_gateway',
    });
  });
});
