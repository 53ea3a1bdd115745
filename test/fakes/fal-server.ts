import { createHash, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { falAppId } from '../../lib/providers/fal';
import {
  attemptCounter,
  fakeProvider,
  faultsIn,
  firstReadFault,
  readInputImage,
  renderOutput,
  sendGatewayError,
  sendJson,
  sendText,
  type FakeProviderHandle,
  type InputImageRead,
  type RecordedRequest,
  type ServedFile,
} from './http';

/**
 * A fake fal.ai queue (shared/reference/providers.md §1) on 127.0.0.1: submit, status, result and
 * cancel at the documented paths, with `Authorization: Key …` checked; it returns status, response
 * and cancel URLs pointing at itself, serves its outputs (real PNGs) from its own URLs, serves a
 * JWKS and sends Ed25519-signed webhooks to `fal_webhook`.
 *
 * Faults are asked for per request with tokens in the prompt:
 * - `#submit-429` / `#submit-503`: the first submit of this prompt gets 429 (Retry-After:
 *   `retryAfterSeconds`) / a 503 gateway page;
 * - `#status-500`, `#status-hang` (no answer for `hangMs`), `#status-malformed` (truncated JSON):
 *   the first status call of the request;
 * - `#no-webhook`, `#dup-webhook` (the completion webhook three times, 1.1 s apart);
 * - `#completed-error` (COMPLETED with `error`, result 500 runner_server_error), `#invalid-input`
 *   (result 422 detail naming aspect_ratio), `#content-policy` (422 content_policy_violation),
 *   `#submit-invalid` (422 at submit);
 * - `#output-404` (the output URL answers 404), `#slow` (runs a minute: for cancellation).
 *
 * Storage (fal-js `storage.ts`): `POST /storage/upload/initiate?storage_type=fal-cdn-v3` with the
 * key answers `{upload_url, file_url}`; a PUT of the bytes to `upload_url` (signed: no key, or it
 * answers 400 as a bucket does) stores them, and `file_url` (this server's) serves them from then
 * on. Faults by file name (`uploadFaults`): `initiate-503` (the first initiate), `put-expired` (the
 * first PUT: 403 "Request has expired"), `initiate-413` / `put-413` (every time), `file-gone` (the
 * PUT succeeds but file_url answers 404: the model cannot download it).
 *
 * A submitted `image_url` / `end_image_url` is read as fal's runner reads it (a data URI decoded, a
 * file of this server's, or fetched); one that cannot be read fails the request with fal's 422
 * `file_download_error`, so a test proves the model really got an image it could fetch.
 */
export interface FakeFalOptions {
  key?: string;
  queueMs?: number;
  runMs?: number;
  hangMs?: number;
  retryAfterSeconds?: number;
  userId?: string;
  /** Rewrites an input image URL before fetching it (a public origin to a local server). */
  rewriteImageUrl?: (url: string) => string;
}

/** A file put on the fake's storage. */
export interface FalStoredFile extends ServedFile {
  fileName: string;
  fileUrl: string;
}

export interface FalJob {
  requestId: string;
  endpoint: string;
  input: Record<string, unknown>;
  faults: Set<string>;
  webhookUrl: string | null;
  submittedAt: number;
  runMs: number;
  canceled: boolean;
  statusCalls: number;
  output?: { url: string; file: ServedFile };
  /** The input images as the model read them, by field. */
  images: Record<string, InputImageRead>;
}

export interface FakeFal extends FakeProviderHandle {
  jwksUrl: string;
  userId: string;
  /** Every submitted request, in the order of submission. */
  jobs: Map<string, FalJob>;
  /** Requests submitted and not yet ended (queued or running at this fake, not canceled). */
  inFlight(): number;
  /** The most requests ever in flight at once (counted at each submit, when the count can grow). */
  readonly peakInFlight: number;
  /** The request submitted with this prompt (the last one). */
  jobFor(prompt: string): FalJob | undefined;
  /** Files stored through the storage API, by file_url. */
  storedFiles: Map<string, FalStoredFile>;
  /** Storage faults for uploads of this file name (see above). */
  uploadFaults(fileName: string, ...faults: string[]): void;
  /** The initiate calls for this file name (all of them without one). */
  initiates(fileName?: string): RecordedRequest[];
  /** Signs a webhook body as fal does, by default with the fake's own key. */
  signWebhook(
    body: string,
    opts?: { requestId?: string; timestamp?: number; privateKey?: KeyObject },
  ): Record<string, string>;
}

export async function startFakeFal(opts: FakeFalOptions = {}): Promise<FakeFal> {
  const key = opts.key ?? 'test';
  const queueMs = opts.queueMs ?? 150;
  const defaultRunMs = opts.runMs ?? 250;
  const hangMs = opts.hangMs ?? 5000;
  const retryAfter = opts.retryAfterSeconds ?? 2;
  const userId = opts.userId ?? 'fake-fal-user';
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });

  const jobs = new Map<string, FalJob>();
  let peakInFlight = 0;
  const submitAttempt = attemptCounter();
  const storedFiles = new Map<string, FalStoredFile>();
  const storageFaults = new Map<string, Set<string>>();
  const initiateAttempt = attemptCounter();
  const putAttempt = attemptCounter();
  /** One-time upload URLs handed out by initiate, by token. */
  const uploadSlots = new Map<string, { fileName: string; fileUrl: string; contentType: string }>();
  const fake = fakeProvider({ fileNotFound: (res) => sendJson(res, 404, { detail: 'Not Found' }) });

  const signWebhook: FakeFal['signWebhook'] = (body, o = {}) => {
    const requestId = o.requestId ?? (JSON.parse(body) as { request_id: string }).request_id;
    const timestamp = String(o.timestamp ?? Math.floor(Date.now() / 1000));
    const hash = createHash('sha256').update(body).digest('hex');
    const message = Buffer.from(`${requestId}\n${userId}\n${timestamp}\n${hash}`);
    return {
      'content-type': 'application/json',
      'x-fal-webhook-request-id': requestId,
      'x-fal-webhook-user-id': userId,
      'x-fal-webhook-timestamp': timestamp,
      'x-fal-webhook-signature': sign(null, message, o.privateKey ?? privateKey).toString('hex'),
    };
  };

  const urls = (job: FalJob) => {
    const requestBase = `${fake.url}/${falAppId(job.endpoint)}/requests/${job.requestId}`;
    return {
      request_id: job.requestId,
      response_url: requestBase,
      status_url: `${requestBase}/status`,
      cancel_url: `${requestBase}/cancel`,
    };
  };

  const stage = (job: FalJob): 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' => {
    if (job.canceled) return 'COMPLETED';
    const elapsed = Date.now() - job.submittedAt;
    if (elapsed < queueMs) return 'IN_QUEUE';
    if (elapsed < queueMs + job.runMs) return 'IN_PROGRESS';
    return 'COMPLETED';
  };
  const inFlight = () => [...jobs.values()].filter((j) => stage(j) !== 'COMPLETED').length;

  /** The job's result: status code, body and headers of GET response_url once COMPLETED. */
  const result = (job: FalJob): { status: number; body: unknown; headers?: Record<string, string> } => {
    if (job.canceled) {
      return { status: 400, body: { detail: 'Request was cancelled', error_type: 'client_cancelled' } };
    }
    const unreadable = Object.entries(job.images).find(([, read]) => !read.ok);
    if (unreadable) {
      const [field, read] = unreadable;
      return {
        status: 422,
        body: {
          detail: [
            {
              loc: ['body', field],
              msg: `Failed to download the file. Please check if the URL is accessible. (${read.ok ? '' : read.reason})`,
              type: 'file_download_error',
              url: 'https://docs.fal.ai/errors#file_download_error',
              input: read.url.slice(0, 200),
            },
          ],
        },
      };
    }
    if (job.faults.has('completed-error')) {
      return {
        status: 500,
        body: { detail: 'Internal server error', error_type: 'runner_server_error' },
        headers: { 'x-fal-error-type': 'runner_server_error' },
      };
    }
    if (job.faults.has('invalid-input')) {
      return {
        status: 422,
        body: {
          detail: [
            {
              loc: ['body', 'aspect_ratio'],
              msg: "Input should be '21:9', '16:9', '4:3', '3:2', '1:1', '2:3', '3:4', '9:16' or '9:21'",
              type: 'literal_error',
            },
          ],
        },
      };
    }
    if (job.faults.has('content-policy')) {
      return {
        status: 422,
        body: {
          detail: [
            {
              loc: ['body', 'prompt'],
              msg: 'The content was flagged by a content checker.',
              type: 'content_policy_violation',
              url: 'https://docs.fal.ai/errors#content_policy_violation',
              input: job.input.prompt,
              categories: ['violence'],
            },
          ],
        },
      };
    }
    const { url } = job.output!;
    const isVideo = /video|veo/.test(job.endpoint);
    const file = { url, content_type: 'image/png', width: 64, height: 64 };
    return {
      status: 200,
      body: isVideo
        ? { video: { url, content_type: 'image/png', file_name: '0.png' } }
        : { images: [file], seed: 42, has_nsfw_concepts: [false], prompt: job.input.prompt, timings: {} },
    };
  };

  const sendWebhook = async (job: FalJob) => {
    if (!job.webhookUrl || fake.closed) return;
    const r = result(job);
    const payload =
      r.status === 200
        ? { request_id: job.requestId, gateway_request_id: job.requestId, status: 'OK', payload: r.body }
        : {
            request_id: job.requestId,
            gateway_request_id: job.requestId,
            status: 'ERROR',
            error: `Invalid status code: ${r.status}`,
            payload: r.body,
          };
    const body = JSON.stringify(payload);
    // Each delivery is a new attempt with its own timestamp, as fal's retries are.
    const copies = job.faults.has('dup-webhook') ? 3 : 1;
    await fake.sendWebhook(job.webhookUrl, body, () => signWebhook(body), copies);
  };

  const authorized = (req: RecordedRequest, res: ServerResponse) => {
    if (req.headers.authorization === `Key ${key}`) return true;
    sendJson(res, 401, { detail: 'No user found for Key ID and Secret' });
    return false;
  };

  const faultOf = (fileName: string, fault: string) => storageFaults.get(fileName)?.has(fault) ?? false;

  const initiate = (req: RecordedRequest, res: ServerResponse) => {
    let body: { content_type?: unknown; file_name?: unknown };
    try {
      body = JSON.parse(req.body) as typeof body;
    } catch {
      return sendJson(res, 422, { detail: [{ loc: ['body'], msg: 'Invalid JSON', type: 'json_invalid' }] });
    }
    if (req.query.get('storage_type') !== 'fal-cdn-v3' || typeof body.content_type !== 'string') {
      return sendJson(res, 422, {
        detail: [{ loc: ['body', 'content_type'], msg: 'Field required', type: 'missing' }],
      });
    }
    const fileName = typeof body.file_name === 'string' ? body.file_name : 'file.bin';
    const attempt = initiateAttempt(fileName);
    if (faultOf(fileName, 'initiate-503') && attempt === 1) return sendGatewayError(res, 503);
    if (faultOf(fileName, 'initiate-413')) return sendJson(res, 413, { detail: 'File too large' });
    const token = randomUUID();
    const fileUrl = `${fake.url}/files/storage/${randomUUID()}/${encodeURIComponent(fileName)}`;
    uploadSlots.set(token, { fileName, fileUrl, contentType: body.content_type });
    sendJson(res, 200, {
      upload_url: `${fake.url}/storage-bucket/${token}?X-Goog-Expires=3600&X-Goog-Signature=fake`,
      file_url: fileUrl,
    });
  };

  /** The PUT to a signed upload URL, as a bucket answers it (XML errors, no fal key wanted). */
  const putUpload = (req: RecordedRequest, res: ServerResponse, token: string) => {
    const slot = uploadSlots.get(token);
    const xml = (status: number, code: string, message: string) =>
      sendText(
        res,
        status,
        `<?xml version="1.0"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
        {
          'content-type': 'application/xml',
        },
      );
    if (!slot) return xml(403, 'AccessDenied', 'Invalid upload URL');
    if (req.headers.authorization) {
      return xml(400, 'InvalidArgument', 'Only one auth mechanism allowed; the URL is already signed');
    }
    const attempt = putAttempt(slot.fileName);
    if (faultOf(slot.fileName, 'put-expired') && attempt === 1) {
      uploadSlots.delete(token);
      return xml(403, 'AccessDenied', 'Request has expired');
    }
    if (faultOf(slot.fileName, 'put-413'))
      return xml(413, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size');
    uploadSlots.delete(token);
    const file: FalStoredFile = {
      fileName: slot.fileName,
      fileUrl: slot.fileUrl,
      bytes: req.raw,
      contentType: String(req.headers['content-type'] ?? slot.contentType),
      sha256: createHash('sha256').update(req.raw).digest('hex'),
    };
    storedFiles.set(slot.fileUrl, file);
    if (!faultOf(slot.fileName, 'file-gone')) fake.serveFile(slot.fileUrl, file);
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  };

  /** The input images as fal's runner would download them. */
  const readImages = async (input: Record<string, unknown>) => {
    const images: Record<string, InputImageRead> = {};
    for (const field of ['image_url', 'end_image_url']) {
      const value = input[field];
      if (typeof value !== 'string') continue;
      images[field] = await readInputImage(value, {
        own: (url) => fake.servedFile(url),
        rewrite: opts.rewriteImageUrl,
      });
    }
    return images;
  };

  const submit = async (req: RecordedRequest, res: ServerResponse) => {
    const endpoint = req.path.replace(/^\/+/, '');
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(req.body) as Record<string, unknown>;
    } catch {
      return sendJson(res, 422, { detail: [{ loc: ['body'], msg: 'Invalid JSON', type: 'json_invalid' }] });
    }
    const faults = faultsIn(input.prompt);
    const prompt = String(input.prompt);
    const attempt = submitAttempt(prompt);
    if (faults.has('submit-429') && attempt === 1) {
      return sendJson(res, 429, { detail: 'Too many requests' }, { 'retry-after': String(retryAfter) });
    }
    if (faults.has('submit-503') && attempt === 1) return sendGatewayError(res, 503);
    if (faults.has('submit-invalid')) {
      return sendJson(res, 422, {
        detail: [
          {
            loc: ['body', 'prompt'],
            msg: 'String should have at most 10 characters',
            type: 'string_too_long',
          },
        ],
      });
    }
    const requestId = randomUUID();
    const job: FalJob = {
      requestId,
      endpoint,
      input,
      faults,
      webhookUrl: req.query.get('fal_webhook'),
      submittedAt: Date.now(),
      runMs: faults.has('slow') ? 60_000 : defaultRunMs,
      canceled: false,
      statusCalls: 0,
      images: await readImages(input),
    };
    const file = renderOutput(prompt, 42);
    const fileUrl = `${fake.url}/files/${requestId}/0.png`;
    if (!faults.has('output-404')) fake.serveFile(fileUrl, file);
    job.output = { url: fileUrl, file };
    jobs.set(requestId, job);
    peakInFlight = Math.max(peakInFlight, inFlight());
    if (!faults.has('no-webhook')) fake.schedule(() => void sendWebhook(job), queueMs + job.runMs + 20);
    sendJson(
      res,
      200,
      { status: 'IN_QUEUE', ...urls(job), queue_position: 2 },
      { 'x-fal-request-id': requestId },
    );
  };

  const onRequest = async (req: RecordedRequest, res: ServerResponse) => {
    if (req.method === 'GET' && req.path === '/.well-known/jwks.json') {
      return sendJson(res, 200, { keys: [{ kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid: 'fake-1' }] });
    }
    const bucket = /^\/storage-bucket\/([^/]+)$/.exec(req.path);
    if (bucket && req.method === 'PUT') return putUpload(req, res, bucket[1]!);
    if (!authorized(req, res)) return;
    if (req.method === 'POST' && req.path === '/storage/upload/initiate') return initiate(req, res);

    const m = /^\/(.+)\/requests\/([^/]+)(\/status|\/cancel)?$/.exec(req.path);
    if (!m) {
      if (req.method === 'POST') return submit(req, res);
      return sendJson(res, 404, { detail: 'Not Found' });
    }
    const [, appId, requestId, action] = m;
    const job = jobs.get(requestId!);
    // Status, result and cancel live under owner/alias, without the endpoint's subpath.
    if (!job || falAppId(job.endpoint) !== appId) {
      return sendJson(res, 404, { detail: `Request ${requestId} not found` });
    }

    if (action === '/status' && req.method === 'GET') {
      job.statusCalls++;
      const truncated = '{"status": "IN_PROGRESS", "logs": [{"mess';
      if (job.statusCalls === 1 && (await firstReadFault(res, job.faults, 'status', { hangMs, truncated }))) {
        return;
      }
      const s = stage(job);
      const withLogs = req.query.get('logs') === '1';
      const logs = withLogs
        ? [{ message: 'loading model', level: 'INFO', source: 'USER', timestamp: new Date().toISOString() }]
        : null;
      const body: Record<string, unknown> = { status: s, ...urls(job) };
      if (s === 'IN_QUEUE') {
        body.queue_position = Math.max(0, Math.ceil((queueMs - (Date.now() - job.submittedAt)) / 50));
      } else {
        body.logs = logs;
      }
      if (s === 'COMPLETED') {
        body.metrics = { inference_time: job.runMs / 1000 };
        if (job.faults.has('completed-error')) {
          body.error = 'Internal server error';
          body.error_type = 'runner_server_error';
        }
      }
      return sendJson(res, 200, body, { 'x-fal-request-id': job.requestId });
    }
    if (action === '/cancel' && req.method === 'PUT') {
      if (stage(job) === 'COMPLETED') return sendJson(res, 400, { status: 'ALREADY_COMPLETED' });
      job.canceled = true;
      return sendJson(res, 202, { status: 'CANCELLATION_REQUESTED' });
    }
    if (action === undefined && req.method === 'GET') {
      if (stage(job) !== 'COMPLETED') {
        return sendJson(res, 400, { detail: 'Request is still in progress' });
      }
      const r = result(job);
      return sendJson(res, r.status, r.body, { 'x-fal-request-id': job.requestId, ...r.headers });
    }
    return sendJson(res, 405, { detail: 'Method Not Allowed' });
  };

  await fake.listen(onRequest);
  return {
    ...fake.handle(),
    jwksUrl: `${fake.url}/.well-known/jwks.json`,
    userId,
    jobs,
    inFlight,
    get peakInFlight() {
      return peakInFlight;
    },
    jobFor: (prompt) => [...jobs.values()].filter((j) => j.input.prompt === prompt).at(-1),
    storedFiles,
    uploadFaults: (fileName, ...faults) => storageFaults.set(fileName, new Set(faults)),
    initiates: (fileName) =>
      fake.requests.filter(
        (r) =>
          r.method === 'POST' &&
          r.path === '/storage/upload/initiate' &&
          (fileName === undefined || r.body.includes(JSON.stringify(fileName))),
      ),
    signWebhook,
  };
}
