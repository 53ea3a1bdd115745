import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { signStandardWebhook } from '../../lib/webhooks/signing';
import {
  attemptCounter,
  fakeProvider,
  faultsIn,
  firstReadFault,
  parseMultipart,
  readInputImage,
  renderOutput,
  sendGatewayError,
  sendJson,
  sendText,
  sleep,
  type FakeProviderHandle,
  type InputImageRead,
  type RecordedRequest,
  type ServedFile,
} from './http';

/**
 * A fake Replicate predictions API (shared/reference/providers.md §3) on 127.0.0.1: create (model
 * and version routes, `Prefer: wait=N`), get, cancel and the webhook secret, with Bearer auth; the
 * prediction's `urls` point at itself, outputs (real PNGs) are served from its own URLs, and
 * completion webhooks are signed per Standard Webhooks with the `whsec_` secret.
 *
 * Faults are asked for per request with tokens in the prompt:
 * - `#create-429` (with Retry-After: `retryAfterSeconds` and a throttling `detail`) / `#create-503`:
 *   the first create of this prompt;
 * - `#get-500`, `#get-hang` (no answer for `hangMs`), `#get-malformed`: the first GET of the prediction;
 * - `#no-webhook`, `#dup-webhook` (the terminal webhook three times, same webhook-id, 1.1 s apart);
 * - `#failed` (status failed with an error), `#content-policy` (failed: flagged as sensitive),
 *   `#invalid-input` (422 at create naming input.aspect_ratio);
 * - `#output-404`, `#array-output` (two output URLs), `#slow` (runs a minute: for cancellation).
 *
 * Files: `POST /v1/files` (multipart: `content` with its filename and type, optional `metadata`)
 * answers the file object whose `urls.get` is `/v1/files/<id>` here: with the token, GET it gives
 * the file's JSON and `…/download` its bytes; models read it without one (inside Replicate).
 * Faults by file name (`uploadFaults`): `files-503` (the first POST), `files-413` (every time),
 * `files-gone` (created, then gone before a model reads it).
 *
 * An input value that is a data URI or a URL is read as a model would (decoded, a file of this
 * server's, or fetched); one that cannot be read fails the create with Replicate's 422
 * `invalid_fields`, naming it, so a test proves the model really got an image it could fetch.
 */
export interface FakeReplicateOptions {
  token?: string;
  /** `whsec_…`; a new random one by default. */
  secret?: string;
  startMs?: number;
  runMs?: number;
  hangMs?: number;
  retryAfterSeconds?: number;
}

/** A file created through POST /v1/files. */
export interface FakeFile {
  id: string;
  name: string;
  contentType: string;
  bytes: Buffer;
  sha256: string;
  url: string;
}

type Status = 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled';

export interface FakePrediction {
  id: string;
  model: string;
  input: Record<string, unknown>;
  faults: Set<string>;
  webhook: string | null;
  eventsFilter: string[] | null;
  createdAt: number;
  runMs: number;
  canceledAt: number | null;
  getCalls: number;
  outputs: { url: string; file: ServedFile }[];
  /** The input files (data URIs, file URLs, URLs) as the model read them, by input name. */
  images: Record<string, InputImageRead>;
}

export interface FakeReplicate extends FakeProviderHandle {
  secret: string;
  predictions: Map<string, FakePrediction>;
  predictionFor(prompt: string): FakePrediction | undefined;
  files: Map<string, FakeFile>;
  /** File faults for uploads of this file name (see above). */
  uploadFaults(fileName: string, ...faults: string[]): void;
  /** The POST /v1/files calls (for this file name, when given). */
  fileCreates(fileName?: string): RecordedRequest[];
  /** Standard Webhooks headers for a body, by default with the fake's secret and now. */
  signWebhook(
    body: string,
    opts?: { id?: string; timestamp?: number; secret?: string },
  ): Record<string, string>;
}

export async function startFakeReplicate(opts: FakeReplicateOptions = {}): Promise<FakeReplicate> {
  const token = opts.token ?? 'r8_test';
  const secret = opts.secret ?? `whsec_${randomBytes(32).toString('base64')}`;
  const startMs = opts.startMs ?? 150;
  const defaultRunMs = opts.runMs ?? 250;
  const hangMs = opts.hangMs ?? 5000;
  const retryAfter = opts.retryAfterSeconds ?? 2;

  const predictions = new Map<string, FakePrediction>();
  const createAttempt = attemptCounter();
  const files = new Map<string, FakeFile>();
  const fileFaults = new Map<string, Set<string>>();
  const fileAttempt = attemptCounter();
  const fileNameOf = (req: RecordedRequest) =>
    parseMultipart(req.headers['content-type'], req.raw)?.get('content')?.filename;
  const fake = fakeProvider({
    fileNotFound: (res) => sendText(res, 404, 'Not Found', { 'content-type': 'text/plain' }),
  });

  const signWebhook: FakeReplicate['signWebhook'] = (body, o = {}) => {
    const id = o.id ?? `msg_${randomBytes(12).toString('hex')}`;
    const timestamp = o.timestamp ?? Math.floor(Date.now() / 1000);
    return {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signStandardWebhook(o.secret ?? secret, id, timestamp, body),
    };
  };

  const status = (p: FakePrediction): Status => {
    if (p.canceledAt !== null) return 'canceled';
    const elapsed = Date.now() - p.createdAt;
    if (elapsed < startMs) return 'starting';
    if (elapsed < startMs + p.runMs) return 'processing';
    return p.faults.has('failed') || p.faults.has('content-policy') ? 'failed' : 'succeeded';
  };

  const toJson = (p: FakePrediction) => {
    const s = status(p);
    const done = s === 'succeeded' || s === 'failed' || s === 'canceled';
    const iso = (ms: number) => new Date(ms).toISOString();
    let output: unknown = null;
    if (s === 'succeeded') {
      output = p.faults.has('array-output') ? p.outputs.map((o) => o.url) : p.outputs[0]!.url;
    }
    let error: string | null = null;
    if (s === 'failed') {
      error = p.faults.has('content-policy')
        ? 'The input or output was flagged as sensitive. Please try again with different inputs. (E005)'
        : 'CUDA error: an illegal memory access was encountered';
    }
    return {
      id: p.id,
      model: p.model,
      version: 'hidden',
      input: p.input,
      logs: s === 'starting' ? '' : 'Using seed: 42\nRunning inference\n',
      output,
      data_removed: false,
      error,
      status: s,
      source: 'api',
      created_at: iso(p.createdAt),
      started_at: s === 'starting' ? null : iso(p.createdAt + startMs),
      completed_at: done ? iso(p.canceledAt ?? p.createdAt + startMs + p.runMs) : null,
      metrics: s === 'succeeded' ? { predict_time: p.runMs / 1000 } : {},
      urls: {
        get: `${fake.url}/v1/predictions/${p.id}`,
        cancel: `${fake.url}/v1/predictions/${p.id}/cancel`,
        web: `https://replicate.com/p/${p.id}`,
      },
      ...(p.webhook ? { webhook: p.webhook, webhook_events_filter: p.eventsFilter ?? undefined } : {}),
    };
  };

  const sendCompletedWebhook = async (p: FakePrediction) => {
    if (!p.webhook || fake.closed) return;
    if (p.eventsFilter && !p.eventsFilter.includes('completed')) return;
    const body = JSON.stringify(toJson(p));
    const id = `msg_${randomBytes(12).toString('hex')}`;
    // A retry keeps the webhook-id and gets a new timestamp (Standard Webhooks).
    const copies = p.faults.has('dup-webhook') ? 3 : 1;
    await fake.sendWebhook(p.webhook, body, () => signWebhook(body, { id }), copies);
  };

  const fileJson = (f: FakeFile, createdAt = new Date()) => ({
    id: f.id,
    name: f.name,
    content_type: f.contentType,
    size: f.bytes.length,
    etag: createHash('md5').update(f.bytes).digest('hex'),
    checksums: { sha256: f.sha256, md5: createHash('md5').update(f.bytes).digest('hex') },
    metadata: {},
    created_at: createdAt.toISOString(),
    expires_at: new Date(createdAt.getTime() + 24 * 3_600_000).toISOString(),
    urls: { get: f.url },
  });

  const createFile = (req: RecordedRequest, res: ServerResponse) => {
    const parts = parseMultipart(req.headers['content-type'], req.raw);
    const content = parts?.get('content');
    if (!content) {
      return sendJson(res, 400, { title: 'Bad request', detail: 'content is required', status: 400 });
    }
    const name = content.filename ?? 'file';
    const faults = fileFaults.get(name) ?? new Set<string>();
    if (faults.has('files-503') && fileAttempt(name) === 1) return sendGatewayError(res, 503);
    if (faults.has('files-413')) {
      return sendJson(res, 413, {
        title: 'Payload too large',
        detail: 'File exceeds the maximum size',
        status: 413,
      });
    }
    const id = randomBytes(13).toString('hex').slice(0, 26);
    const file: FakeFile = {
      id,
      name,
      contentType: content.contentType ?? 'application/octet-stream',
      bytes: content.data,
      sha256: createHash('sha256').update(content.data).digest('hex'),
      url: `${fake.url}/v1/files/${id}`,
    };
    if (!faults.has('files-gone')) files.set(id, file);
    sendJson(res, 201, fileJson(file));
  };

  /** A file of ours by its urls.get (read inside Replicate: no token needed). */
  const ownFile = (url: string): ServedFile | undefined => {
    const m = /\/v1\/files\/([^/?#]+)$/.exec(url);
    const f = url.startsWith(`${fake.url}/`) && m ? files.get(m[1]!) : undefined;
    return f ? { bytes: f.bytes, contentType: f.contentType, sha256: f.sha256 } : fake.servedFile(url);
  };

  /** Every input value that is a file (data URI or URL), read as the model would. */
  const readImages = async (input: Record<string, unknown>) => {
    const images: Record<string, InputImageRead> = {};
    for (const [name, value] of Object.entries(input)) {
      if (typeof value === 'string' && /^(data:|https?:\/\/)/.test(value)) {
        images[name] = await readInputImage(value, { own: ownFile });
      }
    }
    return images;
  };

  const create = async (req: RecordedRequest, res: ServerResponse, model: string) => {
    let body: { input?: Record<string, unknown>; webhook?: string; webhook_events_filter?: string[] };
    try {
      body = JSON.parse(req.body) as typeof body;
    } catch {
      return sendJson(res, 400, { title: 'Bad request', detail: 'Invalid JSON', status: 400 });
    }
    const input = body.input ?? {};
    if (typeof input.prompt !== 'string') {
      return sendJson(res, 422, {
        title: 'Input validation failed',
        detail: '- input: prompt is required',
        status: 422,
        invalid_fields: [{ type: 'required', field: 'input.prompt', description: 'prompt is required' }],
      });
    }
    const faults = faultsIn(input.prompt);
    const attempt = createAttempt(input.prompt);
    if (faults.has('create-429') && attempt === 1) {
      return sendJson(
        res,
        429,
        {
          title: 'Request was throttled',
          detail: `Request was throttled. Expected available in ${retryAfter} seconds.`,
          status: 429,
        },
        { 'retry-after': String(retryAfter) },
      );
    }
    if (faults.has('create-503') && attempt === 1) return sendGatewayError(res, 503);
    if (faults.has('invalid-input')) {
      return sendJson(res, 422, {
        title: 'Input validation failed',
        detail: '- input.aspect_ratio: aspect_ratio must be one of the following: "21:9", "16:9", "1:1"',
        status: 422,
        invalid_fields: [
          {
            type: 'enum',
            field: 'input.aspect_ratio',
            description: 'aspect_ratio must be one of the following: "21:9", "16:9", "1:1"',
          },
        ],
      });
    }
    const images = await readImages(input);
    const unreadable = Object.entries(images).find(([, read]) => !read.ok);
    if (unreadable) {
      const [name, read] = unreadable;
      const description = `${name}: could not read the file at ${read.url.slice(0, 100)} (${read.ok ? '' : read.reason})`;
      return sendJson(res, 422, {
        title: 'Input validation failed',
        detail: `- input.${description}`,
        status: 422,
        invalid_fields: [{ type: 'file', field: `input.${name}`, description }],
      });
    }
    const id = randomUUID().replace(/-/g, '').slice(0, 26);
    const count = faults.has('array-output') ? 2 : 1;
    const outputs = Array.from({ length: count }, (_, i) => {
      const file = renderOutput(input.prompt as string, 42 + i);
      const url = `${fake.url}/files/${id}/out-${i}.png`;
      if (!faults.has('output-404')) fake.serveFile(url, file);
      return { url, file };
    });
    const p: FakePrediction = {
      id,
      model,
      input,
      faults,
      webhook: body.webhook ?? null,
      eventsFilter: body.webhook_events_filter ?? null,
      createdAt: Date.now(),
      runMs: faults.has('slow') ? 60_000 : defaultRunMs,
      canceledAt: null,
      getCalls: 0,
      outputs,
      images,
    };
    predictions.set(id, p);
    if (!faults.has('no-webhook')) fake.schedule(() => void sendCompletedWebhook(p), startMs + p.runMs + 20);

    // Prefer: wait=N holds the answer until the prediction is done or N seconds pass.
    const wait = /^wait(?:=(\d+))?$/.exec(String(req.headers.prefer ?? '').trim());
    if (wait) {
      const until = Date.now() + Math.min(60, Number(wait[1] ?? 60)) * 1000;
      while (Date.now() < until && ['starting', 'processing'].includes(status(p)) && !fake.closed)
        await sleep(25);
    }
    sendJson(res, 201, toJson(p), { location: `${fake.url}/v1/predictions/${id}` });
  };

  const onRequest = async (req: RecordedRequest, res: ServerResponse) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      return sendJson(res, 401, {
        title: 'Unauthenticated',
        detail: 'You did not pass a valid authentication token',
        status: 401,
      });
    }
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && (m = /^\/v1\/models\/([^/]+)\/([^/]+)\/predictions$/.exec(req.path))) {
      return create(req, res, `${m[1]}/${m[2]}`);
    }
    if (req.method === 'POST' && req.path === '/v1/predictions') {
      const version = (JSON.parse(req.body || '{}') as { version?: string }).version ?? 'unknown';
      return create(req, res, version.split(':')[0]!);
    }
    if (req.method === 'POST' && req.path === '/v1/files') return createFile(req, res);
    if (req.method === 'GET' && (m = /^\/v1\/files\/([^/]+)(\/download)?$/.exec(req.path))) {
      const f = files.get(m[1]!);
      if (!f) return sendJson(res, 404, { title: 'Not found', detail: 'Not found.', status: 404 });
      if (!m[2]) return sendJson(res, 200, fileJson(f));
      res.writeHead(200, { 'content-type': f.contentType, 'content-length': f.bytes.length });
      return void res.end(f.bytes);
    }
    if (req.method === 'GET' && req.path === '/v1/webhooks/default/secret') {
      return sendJson(res, 200, { key: secret });
    }
    if ((m = /^\/v1\/predictions\/([^/]+)(\/cancel)?$/.exec(req.path))) {
      const p = predictions.get(m[1]!);
      if (!p) return sendJson(res, 404, { title: 'Not found', detail: 'Not found.', status: 404 });
      if (m[2] && req.method === 'POST') {
        if (status(p) === 'starting' || status(p) === 'processing') p.canceledAt = Date.now();
        return sendJson(res, 200, toJson(p));
      }
      if (!m[2] && req.method === 'GET') {
        p.getCalls++;
        const truncated = '{"id": "' + p.id + '", "status": "proc';
        if (p.getCalls === 1 && (await firstReadFault(res, p.faults, 'get', { hangMs, truncated }))) return;
        return sendJson(res, 200, toJson(p));
      }
    }
    return sendJson(res, 404, { title: 'Not found', detail: 'Not found.', status: 404 });
  };

  await fake.listen(onRequest);
  return {
    ...fake.handle(),
    secret,
    predictions,
    predictionFor: (prompt) => [...predictions.values()].filter((p) => p.input.prompt === prompt).at(-1),
    files,
    uploadFaults: (fileName, ...faults) => fileFaults.set(fileName, new Set(faults)),
    fileCreates: (fileName) =>
      fake.requests.filter(
        (r) =>
          r.method === 'POST' &&
          r.path === '/v1/files' &&
          (fileName === undefined || fileNameOf(r) === fileName),
      ),
    signWebhook,
  };
}
