// A provider that costs nothing, in its own process: fal's queue wire protocol as Velro's fal client
// (lib/providers/fal.ts) uses it, answered at once, so a bench measures Velro's orchestration apart
// from any rendering. Run: `node --import tsx bench/zero-cost-provider.ts [--latency-ms N]`
// (or ZERO_COST_LATENCY_MS); it prints `listening <url>` once ready.
//
// - POST /<endpoint>: submit; answers IN_QUEUE with the request's status/response/cancel URLs.
// - GET /<owner>/<alias>/requests/<id>/status: IN_PROGRESS until the job's latency has passed,
//   then COMPLETED. GET …/requests/<id>: the result, one 64×64 PNG served from /files/output.png.
//   PUT …/requests/<id>/cancel: ends the job.
// - A job's latency is the default, or `latency-ms=N` in its prompt (a long one parks it in flight).
// - GET /__stats: per request, when the submit arrived, when the job was ready, when the first
//   COMPLETED was answered and how many status calls it took, with the prompt's `tag=…`.
import { randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { encodePng } from '../lib/providers/local/png';

export interface ZeroCostJob {
  requestId: string;
  tag: string | null;
  submittedAt: number;
  readyAt: number;
  firstCompletedAt: number | null;
  statusCalls: number;
  canceled: boolean;
}

/** The answer of GET /__stats. */
export interface ZeroCostStats {
  jobs: ZeroCostJob[];
}

const OUTPUT_PATH = '/files/output.png';

function outputPng(): Buffer {
  const size = 64;
  const rgba = new Uint8Array(size * size * 4);
  for (let i = 0; i < size * size; i++) rgba.set([(i * 7) % 256, (i >> 6) * 4, 160, 255], i * 4);
  return encodePng(size, size, rgba);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startZeroCostProvider(opts: { latencyMs: number; port?: number }) {
  const png = outputPng();
  const jobs = new Map<string, ZeroCostJob>();
  let base = '';

  const refs = (appId: string, requestId: string) => {
    const request = `${base}/${appId}/requests/${requestId}`;
    return {
      request_id: requestId,
      response_url: request,
      status_url: `${request}/status`,
      cancel_url: `${request}/cancel`,
    };
  };
  const completed = (job: ZeroCostJob, now: number) => job.canceled || now >= job.readyAt;

  const submit = async (req: IncomingMessage, res: ServerResponse, endpoint: string) => {
    let input: { prompt?: unknown };
    try {
      input = JSON.parse(await readBody(req)) as typeof input;
    } catch {
      return send(res, 422, { detail: [{ loc: ['body'], msg: 'Invalid JSON', type: 'json_invalid' }] });
    }
    const prompt = typeof input.prompt === 'string' ? input.prompt : '';
    const latency = /latency-ms=(\d+)/.exec(prompt);
    const now = Date.now();
    const job: ZeroCostJob = {
      requestId: randomUUID(),
      tag: /tag=(\S+)/.exec(prompt)?.[1] ?? null,
      submittedAt: now,
      readyAt: now + (latency ? Number(latency[1]) : opts.latencyMs),
      firstCompletedAt: null,
      statusCalls: 0,
      canceled: false,
    };
    jobs.set(job.requestId, job);
    // fal's app id is owner/alias: the endpoint without its subpath.
    const appId = endpoint.split('/').slice(0, 2).join('/');
    send(
      res,
      200,
      { status: 'IN_QUEUE', queue_position: 0, ...refs(appId, job.requestId) },
      { 'x-fal-request-id': job.requestId },
    );
  };

  const onRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', base);
    if (req.method === 'GET' && url.pathname === OUTPUT_PATH) {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length });
      return res.end(png);
    }
    if (req.method === 'GET' && url.pathname === '/__stats') {
      return send(res, 200, { jobs: [...jobs.values()] } satisfies ZeroCostStats);
    }
    if (!req.headers.authorization?.startsWith('Key ')) {
      return send(res, 401, { detail: 'No user found for Key ID and Secret' });
    }
    const m = /^\/(.+)\/requests\/([^/]+)(\/status|\/cancel)?$/.exec(url.pathname);
    if (!m) {
      if (req.method === 'POST') return submit(req, res, url.pathname.replace(/^\/+/, ''));
      return send(res, 404, { detail: 'Not Found' });
    }
    const [, appId, requestId, action] = m;
    const job = jobs.get(requestId!);
    if (!job) return send(res, 404, { detail: `Request ${requestId} not found` });
    const now = Date.now();
    const headers = { 'x-fal-request-id': job.requestId };
    if (action === '/status' && req.method === 'GET') {
      job.statusCalls++;
      if (!completed(job, now)) {
        return send(res, 200, { status: 'IN_PROGRESS', logs: [], ...refs(appId!, job.requestId) }, headers);
      }
      job.firstCompletedAt ??= now;
      const metrics = { inference_time: (job.readyAt - job.submittedAt) / 1000 };
      return send(
        res,
        200,
        { status: 'COMPLETED', logs: [], metrics, ...refs(appId!, job.requestId) },
        headers,
      );
    }
    if (action === '/cancel' && req.method === 'PUT') {
      if (completed(job, now)) return send(res, 400, { status: 'ALREADY_COMPLETED' });
      job.canceled = true;
      return send(res, 202, { status: 'CANCELLATION_REQUESTED' });
    }
    if (action === undefined && req.method === 'GET') {
      if (!completed(job, now)) return send(res, 400, { detail: 'Request is still in progress' }, headers);
      if (job.canceled) {
        return send(res, 400, { detail: 'Request was cancelled', error_type: 'client_cancelled' }, headers);
      }
      const image = { url: `${base}${OUTPUT_PATH}`, content_type: 'image/png', width: 64, height: 64 };
      return send(res, 200, { images: [image], seed: 42, has_nsfw_concepts: [false], timings: {} }, headers);
    }
    return send(res, 405, { detail: 'Method Not Allowed' });
  };

  const server = http.createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => send(res, 500, { detail: String(err) }));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url: base, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

if (require.main === module) {
  const { values } = parseArgs({ options: { 'latency-ms': { type: 'string' } } });
  const latencyMs = Number(values['latency-ms'] ?? process.env.ZERO_COST_LATENCY_MS ?? 0);
  startZeroCostProvider({ latencyMs }).then(
    (p) => console.log(`listening ${p.url}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
