// Development only (lib/dev/): the one port in front of the cluster's API replicas. node:http only;
// bodies stream both ways (SSE works), so nothing is buffered.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Upstream {
  host: string;
  port: number;
}

export interface RoundRobinProxyOptions {
  upstreams: Upstream[];
  port?: number; // default: a free port
  host?: string; // default 127.0.0.1
  /** Per upstream: how long a TCP connect may take before the next replica is tried. */
  connectTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface RoundRobinProxy {
  url: string;
  port: number;
  close(): Promise<void>;
}

// RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Idempotent and bodiless: safe to send again to another replica when the first failed before answering. */
const RETRYABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Sends each request to the next replica in turn. A replica that refuses the connection (or does not
 * accept it within `connectTimeoutMs`) is skipped for that request, which goes to the next one: no
 * byte of the body has been read yet, so that is safe. A GET, HEAD or OPTIONS whose replica fails
 * before answering (killed mid-request, a kept-alive connection it had closed) is sent to the next
 * replica too: it is idempotent and has no body, as a load balancer such as nginx does by default.
 * Any other request that fails mid-way is answered 502: it may have had its effect, so only the client
 * can retry it (with its Idempotency-Key). When no replica answers: 502 problem+json.
 * There is no response timeout: an event stream may rightly stay open for minutes.
 */
export async function startRoundRobinProxy(opts: RoundRobinProxyOptions): Promise<RoundRobinProxy> {
  if (!opts.upstreams.length) throw new Error('the proxy needs at least one upstream');
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2_000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  let next = 0;

  const server = http.createServer((req, res) => {
    const first = next;
    next = (next + 1) % opts.upstreams.length;
    forward(req, res, first, 0);
  });

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, index: number, tried: number) => {
    if (tried === opts.upstreams.length) return badGateway(res);
    const upstream = opts.upstreams[(index + tried) % opts.upstreams.length]!;
    const tryNext = () => forward(req, res, index, tried + 1);
    let bodyStarted = false;
    const upstreamReq = http.request({
      agent,
      host: upstream.host,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: forwardedHeaders(req),
    });
    const startBody = () => {
      bodyStarted = true;
      // A retried GET: its (empty) body was read by the first attempt already.
      if (req.readableEnded) upstreamReq.end();
      else req.pipe(upstreamReq);
    };
    upstreamReq.on('socket', (socket: Socket) => {
      if (!socket.connecting) return startBody(); // a kept-alive connection
      const timer = setTimeout(() => upstreamReq.destroy(new Error('connect timeout')), connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        startBody();
      });
      socket.once('close', () => clearTimeout(timer));
    });
    upstreamReq.on('error', (err) => {
      if (res.headersSent) return res.destroy(err);
      if (!bodyStarted) {
        opts.log?.(`${upstream.host}:${upstream.port} unreachable (${err.message}); trying the next replica`);
        return tryNext();
      }
      if (RETRYABLE_METHODS.has(req.method ?? '')) {
        opts.log?.(
          `${upstream.host}:${upstream.port} failed before answering ${req.method} (${err.message}); trying the next replica`,
        );
        return tryNext();
      }
      opts.log?.(`${upstream.host}:${upstream.port} failed mid-request: ${err.message}`);
      badGateway(res);
    });
    upstreamReq.on('response', (upstreamRes) => {
      res.writeHead(
        upstreamRes.statusCode ?? 502,
        upstreamRes.statusMessage,
        withoutHopByHop(upstreamRes.headers),
      );
      upstreamRes.pipe(res);
      upstreamRes.on('error', (err) => res.destroy(err));
    });
    // The client went away (e.g. closed an event stream): so does the upstream request.
    res.on('close', () => {
      if (!res.writableFinished) upstreamReq.destroy();
    });
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}`,
    port,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

function forwardedHeaders(req: http.IncomingMessage): http.OutgoingHttpHeaders {
  const headers = withoutHopByHop(req.headers);
  const client = req.socket.remoteAddress ?? 'unknown';
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
  headers['x-forwarded-proto'] ??= 'http';
  if (req.headers.host) headers['x-forwarded-host'] ??= req.headers.host;
  return headers;
}

function withoutHopByHop(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !named.has(name)) out[name] = value;
  }
  return out;
}

function badGateway(res: http.ServerResponse): void {
  if (res.headersSent) return void res.destroy();
  const requestId = randomUUID();
  const body = JSON.stringify({
    type: 'urn:velro:error:bad_gateway',
    title: 'Bad Gateway',
    status: 502,
    detail: 'No API replica accepted the request; try again shortly.',
    code: 'bad_gateway',
    requestId,
  });
  res.writeHead(502, {
    'content-type': 'application/problem+json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'retry-after': '1',
    'x-request-id': requestId,
  });
  res.end(body);
}
