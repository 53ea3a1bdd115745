// Attacks on what production exposes, each shown failing. The issue "Money and walls" named these;
// where one needs a harness of its own, its test lives beside the mechanism it attacks:
//
// - a free generation by cancelling while outputs are stored: test/e2e/point-of-no-return.test.ts
//   (409 not_cancelable, stored and charged; a failed generation lists and serves no output) and
//   test/workflows/generation-workflow.test.ts ("cancellation at every stage");
// - SQL on the app pool stepping around row-level security (SET ROLE, p_user for another user,
//   password hashes): test/integration/database-wall.test.ts;
// - an operator's terminate leaving credits reserved: test/integration/reconciler.test.ts;
// - placeholder or low-entropy JWT_SECRET, TRUST_PROXY=true, relaxed rules without NODE_ENV:
//   test/unit/config.test.ts and test/unit/webhook-url-policy.test.ts;
// - HTML or script served as an output: test/e2e/point-of-no-return.test.ts;
// - raw driver and activity errors shown to clients: "readiness tells strangers only ok or failed"
//   below, and the internal_error test in test/workflows/generation-workflow.test.ts;
// - X-Forwarded-For forged behind one proxy, /metrics without its token, oversized requests
//   answered without problem+json or with a dropped connection: the describe blocks below.
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../api/app';
import { jwtKey } from '../../lib/auth/jwt';
import { loadConfig } from '../../lib/config';
import { createStorage } from '../../lib/wiring/from-config';
import {
  createUser,
  startApi,
  startHarness,
  waitFor,
  type ApiHarness,
  type Harness,
} from '../support/context';

const PASSWORD = 'correct horse battery staple';
const newEmail = () => `sec-${randomUUID()}@test.velro`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function expectProblem(
  res: { statusCode: number; headers: Record<string, unknown>; json(): unknown },
  code: string,
) {
  expect(res.headers['content-type']).toContain('application/problem+json');
  const body = res.json() as { code: string; status: number; requestId: string };
  expect(body).toMatchObject({ code, status: res.statusCode });
  expect(body.requestId).toBe(res.headers['x-request-id']);
}

describe('rate limits', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi({ RATE_LIMIT_MAX: '5', RATE_LIMIT_AUTH_MAX: '3', RATE_LIMIT_WINDOW_SECONDS: '60' });
  });
  afterAll(() => h?.stop());

  it('limits each user, across all their keys, to RATE_LIMIT_MAX per window: then 429 rate_limited with Retry-After', async () => {
    const a = await createUser(h.db);
    const b = await createUser(h.db);
    const remaining: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await h.app.inject({ url: '/v1/me', headers: a.auth });
      expect(res.statusCode).toBe(200);
      remaining.push(String(res.headers['x-ratelimit-remaining']));
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    const limited = await h.app.inject({ url: '/v1/me', headers: a.auth });
    expect(limited.statusCode).toBe(429);
    expectProblem(limited, 'rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    // Invalid requests count too (the limit applies before the body is read).
    const bad = await h.app.inject({
      method: 'POST',
      url: '/v1/projects',
      headers: a.auth,
      payload: { nope: 1 },
    });
    expect(bad.statusCode).toBe(429);
    // The bucket is the user's, not the credential's: a login token of the same user waits too.
    const { token } = h.app.issueToken({ id: a.userId, role: 'user' });
    expect((await h.app.inject({ url: '/v1/me', headers: bearer(token) })).statusCode).toBe(429);
    // Another user is not affected.
    expect((await h.app.inject({ url: '/v1/me', headers: b.auth })).statusCode).toBe(200);
  });

  it('limits login and register per client address to RATE_LIMIT_AUTH_MAX, each on its own', async () => {
    const email = newEmail();
    const register = (e: string) =>
      h.app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email: e, password: PASSWORD } });
    const login = (password: string) =>
      h.app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } });
    expect((await register(email)).statusCode).toBe(201);
    expect((await register(newEmail())).statusCode).toBe(201);
    expect((await register(newEmail())).statusCode).toBe(201);
    const fourth = await register(newEmail());
    expect(fourth.statusCode).toBe(429);
    expectProblem(fourth, 'rate_limited');

    expect((await login('wrong password 1')).statusCode).toBe(401);
    expect((await login('wrong password 2')).statusCode).toBe(401);
    expect((await login(PASSWORD)).statusCode).toBe(200);
    // Even the right password waits now: guessing is throttled per address.
    const limited = await login(PASSWORD);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBeDefined();

    // From another address the limits start afresh.
    const elsewhere = await h.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email, password: PASSWORD },
      remoteAddress: '203.0.113.7',
    });
    expect(elsewhere.statusCode).toBe(200);
  });

  it('throttles failed credentials per address, before the database is asked', async () => {
    const from = '198.51.100.23';
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const res = await h.app.inject({
        url: '/v1/me',
        headers: bearer(`vk_${'A'.repeat(40)}${i}`),
        remoteAddress: from,
      });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) expectProblem(res, 'rate_limited');
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // A request without credentials is a plain 401, not a failed guess.
    expect((await h.app.inject({ url: '/v1/me', remoteAddress: '198.51.100.24' })).statusCode).toBe(401);
  });

  it('limits anonymous calls per address, but never health, readiness or metrics', async () => {
    const from = '192.0.2.50';
    for (let i = 0; i < 10; i++) {
      expect((await h.app.inject({ url: '/health', remoteAddress: from })).statusCode).toBe(200);
      expect((await h.app.inject({ url: '/metrics', remoteAddress: from })).statusCode).toBe(200);
    }
    const codes = [];
    for (let i = 0; i < 6; i++)
      codes.push((await h.app.inject({ url: '/', remoteAddress: from })).statusCode);
    expect(codes).toEqual([200, 200, 200, 200, 200, 429]);
  });
});

describe('body size, CORS and security headers', () => {
  let h: ApiHarness;
  let cors: ApiHarness;
  beforeAll(async () => {
    h = await startApi();
    cors = await startApi({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' });
  });
  afterAll(async () => {
    await h?.stop();
    await cors?.stop();
  });

  it('answers 413 payload_too_large as problem+json above 256 KiB', async () => {
    const user = await createUser(h.db);
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/projects',
      headers: { ...user.auth, 'content-type': 'application/json' },
      payload: JSON.stringify({ name: 'x'.repeat(300 * 1024) }),
    });
    expect(res.statusCode).toBe(413);
    expectProblem(res, 'payload_too_large');
  });

  it('sends no CORS headers unless CORS_ORIGINS names the origin', async () => {
    const res = await h.app.inject({ url: '/health', headers: { origin: 'https://evil.example' } });
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await h.app.inject({
      method: 'OPTIONS',
      url: '/v1/me',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' },
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    expect(preflight.statusCode).toBe(404);
    expectProblem(preflight, 'not_found');
  });

  it('allows exactly the configured origins, with the Authorization header', async () => {
    const preflight = await cors.app.inject({
      method: 'OPTIONS',
      url: '/v1/me',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'authorization',
      },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(preflight.headers['access-control-allow-headers'])).toContain('authorization');
    expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();

    const user = await createUser(cors.db);
    const get = await cors.app.inject({
      url: '/v1/me',
      headers: { ...user.auth, origin: 'http://localhost:5173' },
    });
    expect(get.statusCode).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(String(get.headers['access-control-expose-headers'])).toContain('x-request-id');

    const other = await cors.app.inject({ url: '/health', headers: { origin: 'https://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses a wildcard or malformed CORS_ORIGINS at start', () => {
    for (const bad of ['*', 'https://*.example.com', 'app.example.com', 'https://app.example.com/path']) {
      expect(() => loadConfig({ CORS_ORIGINS: bad }), bad).toThrow(/CORS_ORIGINS/);
    }
    expect(loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example:8443/' }).CORS_ORIGINS).toEqual([
      'https://a.example',
      'https://b.example:8443',
    ]);
    expect(loadConfig({}).CORS_ORIGINS).toEqual([]);
  });

  it('requires a long JWT_SECRET and sends HSTS in production', async () => {
    const prod = (secret: string) =>
      loadConfig({ NODE_ENV: 'production', JWT_SECRET: secret, DATABASE_URL: h.config.DATABASE_URL });
    // loadConfig refuses a weak secret first (test/unit/config.test.ts); jwtKey checks again.
    const strong = randomBytes(48).toString('base64');
    await expect(jwtKey({ ...prod(strong), JWT_SECRET: 'too-short' })).rejects.toThrow(/at least 32/);
    const app = await buildApp({
      config: prod(strong),
      db: h.db,
      temporal: h.temporal,
      storage: createStorage(h.config),
      assetSigningKey: Buffer.alloc(32, 7),
    });
    try {
      const res = await app.inject({ url: '/health' });
      expect(res.headers['strict-transport-security']).toContain('max-age=');
    } finally {
      await app.close();
    }
    expect((await h.app.inject({ url: '/health' })).headers['strict-transport-security']).toBeUndefined();
  });

  it('sends security headers and a request id on every response, errors included', async () => {
    for (const url of ['/health', '/v1/me', '/nowhere']) {
      const res = await h.app.inject({ url });
      expect(res.headers['x-request-id'], url).toMatch(UUID);
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      expect(res.headers['content-security-policy'], url).toContain("frame-ancestors 'none'");
      expect(res.headers['referrer-policy'], url).toBe('no-referrer');
      expect(res.headers['x-powered-by'], url).toBeUndefined();
      if (res.statusCode >= 400) expect(res.json().requestId).toBe(res.headers['x-request-id']);
    }
  });

  it('keeps the docs UI working under its CSP: no inline script, every resource same-origin and served', async () => {
    const page = await h.app.inject({ url: '/docs/' });
    expect(page.statusCode).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-eval');
    const html = page.body;
    // Every <script> has a src (the CSP allows no inline script)...
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/src="/);
      expect(body!.trim()).toBe('');
    }
    // ...and every script and stylesheet is same-origin and answers 200.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(3);
    for (const ref of refs) {
      expect(ref, ref).not.toMatch(/^(https?:)?\/\//);
      const res = await h.app.inject({ url: new URL(ref, 'http://localhost/docs/').pathname });
      expect(res.statusCode, ref).toBe(200);
    }
    const init = await h.app.inject({ url: '/docs/static/swagger-initializer.js' });
    expect(init.body).toContain('SwaggerUIBundle');
    expect((await h.app.inject({ url: '/openapi.json' })).statusCode).toBe(200);
  });
});

describe('logs', () => {
  let h: Harness;
  let app: App;
  const lines: string[] = [];
  beforeAll(async () => {
    // The harness runs the worker; a second app on the same task queue logs everything to memory.
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '100' });
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    app = await buildApp({
      config: h.config,
      db: h.db,
      temporal: h.temporal,
      storage: createStorage(h.config),
      assetSigningKey: Buffer.alloc(32, 7),
      logger: { level: 'trace', stream },
    });
  });
  afterAll(async () => {
    await app?.close();
    await h?.stop();
  });

  it('never contain passwords, tokens, API keys, prompts or URL signatures, but do carry request ids', async () => {
    const email = newEmail();
    const password = `pw-${randomUUID()}`;
    const prompt = `secret prompt ${randomUUID()}`;
    const reg = await app.inject({ method: 'POST', url: '/v1/auth/register', payload: { email, password } });
    expect(reg.statusCode).toBe(201);
    const login = await app.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password } });
    const token = login.json().token as string;
    await app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email, password: `${password}-wrong` },
    });
    const key = (
      await app.inject({
        method: 'POST',
        url: '/v1/api-keys',
        headers: bearer(token),
        payload: { name: 'k' },
      })
    ).json().key as string;
    const payer = await createUser(h.db, 100);
    const submit = await app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: payer.auth,
      payload: { model: 'imagen4-ultra', input: { prompt, negative_prompt: prompt } },
    });
    expect(submit.statusCode).toBe(202);
    const done = await waitFor(
      async () =>
        (await app.inject({ url: `/v1/generations/${submit.json().id}`, headers: payer.auth })).json(),
      (g) => g.status === 'succeeded',
    );
    const signed = new URL(done.outputs[0].url);
    const signature = signed.searchParams.get('signature')!;
    expect((await app.inject({ url: signed.pathname + signed.search })).statusCode).toBe(200);
    await app.inject({ url: '/v1/me', headers: bearer(key) });
    await app.inject({ url: '/v1/me', headers: bearer(`${token}tampered`) });
    await app.inject({ url: `/v1/assets/${randomUUID()}?expires=1&signature=${signature}` });

    const log = lines.join('\n');
    expect(lines.length).toBeGreaterThan(20);
    for (const [what, secret] of [
      ['password', password],
      ['token', token],
      ['token signature', token.split('.')[2]!],
      ['API key', key],
      ['test API key', payer.apiKey],
      ['prompt', prompt],
      ['URL signature', signature],
    ] as const) {
      expect(log.includes(secret), `${what} appears in the logs`).toBe(false);
    }
    // Not vacuous: the requests were logged, with their id and a redacted URL.
    const entries = lines.map((l) => JSON.parse(l) as { reqId?: string; req?: { url: string } });
    expect(entries.filter((e) => e.req?.url.startsWith('/v1/auth/')).length).toBeGreaterThanOrEqual(3);
    expect(entries.some((e) => e.req?.url.includes('signature=[redacted]'))).toBe(true);
    expect(entries.filter((e) => e.req).every((e) => e.reqId && UUID.test(e.reqId))).toBe(true);
  });

  it('redacts secrets that code might log by mistake', () => {
    lines.length = 0;
    app.log.info(
      {
        req: { headers: { authorization: 'Bearer vk_leak' } },
        body: { password: 'pw-leak', input: { prompt: 'prompt-leak' } },
        user: { password: 'pw2-leak', token: 'tok-leak' },
        password: 'pw3-leak',
      },
      'oops',
    );
    const log = lines.join('\n');
    expect(log).toContain('oops');
    expect(log).not.toMatch(/leak/);
  });
});

describe('attack: a client behind one proxy (TRUST_PROXY=1) forges X-Forwarded-For to dodge the per-IP login limit', () => {
  let h: ApiHarness;
  const PROXY = '10.0.0.2';
  const CLIENT = '203.0.113.77';
  /** What the proxy passes on: whatever the client claimed, then the address it really saw. */
  const through = (i: number, client = CLIENT) => ({
    remoteAddress: PROXY,
    headers: { 'x-forwarded-for': `198.51.100.${i}, 2001:db8::${i.toString(16)}, ${client}` },
  });
  beforeAll(async () => {
    h = await startApi({ TRUST_PROXY: '1', RATE_LIMIT_AUTH_MAX: '3', RATE_LIMIT_WINDOW_SECONDS: '60' });
  });
  afterAll(() => h?.stop());

  it('rotating fake addresses before the real one still hits RATE_LIMIT_AUTH_MAX on login', async () => {
    const email = newEmail();
    const statuses = [];
    for (let i = 1; i <= 6; i++) {
      const { remoteAddress, headers } = through(i);
      const res = await h.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: { email, password: `guess number ${i}` },
        remoteAddress,
        headers,
      });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) expectProblem(res, 'rate_limited');
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429]);
    // The limit is the client's, not the proxy's: another client behind the same proxy logs in freely.
    const { remoteAddress, headers } = through(99, '203.0.113.78');
    const other = await h.app.inject({
      method: 'POST',
      url: '/v1/auth/login',
      payload: { email, password: 'guess number 99' },
      remoteAddress,
      headers,
    });
    expect(other.statusCode).toBe(401);
  });

  it('rotating fake addresses cannot spread guessed API keys over many buckets either', async () => {
    const client = '203.0.113.90';
    const statuses = [];
    for (let i = 1; i <= 5; i++) {
      const { remoteAddress, headers } = through(i, client);
      const res = await h.app.inject({
        url: '/v1/me',
        headers: { ...headers, ...bearer(`vk_${'B'.repeat(40)}${i}`) },
        remoteAddress,
      });
      statuses.push(res.statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
  });
});

describe('readiness tells strangers only ok or failed', () => {
  let h: ApiHarness;
  beforeAll(async () => {
    h = await startApi();
  });
  afterAll(() => h?.stop());

  it('answers ok for both when Postgres and Temporal answer', async () => {
    const res = await h.app.inject({ url: '/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', temporal: 'ok' } });
  });

  it('says failed, without errors, addresses or ports, when they do not; the log has the details', async () => {
    // Postgres on a port nobody listens on; a Temporal that refuses like an unreachable frontend.
    const closed = await new Promise<number>((resolve) => {
      const server = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const pool = new pg.Pool({ connectionString: `postgres://velro:velro@127.0.0.1:${closed}/velro` });
    pool.on('error', () => {});
    const temporal = {
      workflowService: {
        getSystemInfo: () => Promise.reject(new Error('14 UNAVAILABLE: connect ECONNREFUSED 10.9.8.7:7233')),
      },
    };
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    const app = await buildApp({
      config: h.config,
      db: pool as unknown as ApiHarness['db'],
      temporal: temporal as unknown as ApiHarness['temporal'],
      storage: createStorage(h.config),
      assetSigningKey: Buffer.alloc(32, 7),
      logger: { level: 'warn', stream },
    });
    try {
      const res = await app.inject({ url: '/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({
        status: 'unavailable',
        checks: { postgres: 'failed', temporal: 'failed' },
      });
      for (const leak of ['ECONNREFUSED', 'UNAVAILABLE', '127.0.0.1', '10.9.8.7', String(closed), '7233']) {
        expect(res.body, leak).not.toContain(leak);
      }
      const logged = lines.join('\n');
      expect(logged).toContain('ECONNREFUSED');
      expect(logged).toContain('10.9.8.7:7233');
      expect(lines.filter((l) => l.includes('readiness'))).toHaveLength(2);
    } finally {
      await app.close();
      await pool.end();
    }
  });
});

describe('metrics behind METRICS_TOKEN', () => {
  let h: ApiHarness;
  const TOKEN = randomBytes(32).toString('base64url');
  beforeAll(async () => {
    h = await startApi({ METRICS_TOKEN: TOKEN });
  });
  afterAll(() => h?.stop());

  it('answers 401 unauthorized without the token, with a wrong one, or with another scheme', async () => {
    for (const headers of [
      {},
      bearer('nope'),
      bearer(`${TOKEN}x`),
      bearer(TOKEN.slice(0, -1)),
      { authorization: `Basic ${Buffer.from(`prometheus:${TOKEN}`).toString('base64')}` },
      { authorization: TOKEN },
    ]) {
      const res = await h.app.inject({ url: '/metrics', headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(401);
      expectProblem(res, 'unauthorized');
      expect(res.body).not.toContain('velro_http_requests_total');
    }
  });

  it('serves the metrics to Authorization: Bearer <METRICS_TOKEN>', async () => {
    const res = await h.app.inject({ url: '/metrics', headers: bearer(TOKEN) });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toContain('velro_http_requests_total');
  });
});

/** What a raw TCP client read: the parsed answer, and any socket error it got on the way. */
interface WireAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  error?: string;
}

/**
 * Sends `head` (and then `body` bytes of filler, with content-length or chunked) over a plain TCP
 * connection, sending on however early the server answers, and reads the answer until the server
 * closes.
 */
function overTcp(
  port: number,
  head: string,
  body?: { bytes: number; chunked: boolean },
): Promise<WireAnswer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let error: string | undefined;
    socket.on('data', (d) => received.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      const raw = Buffer.concat(received).toString('latin1');
      const split = raw.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = raw.slice(0, split === -1 ? raw.length : split).split('\r\n');
      const headers = Object.fromEntries(
        lines.map((l) => [
          l.slice(0, l.indexOf(':')).trim().toLowerCase(),
          l.slice(l.indexOf(':') + 1).trim(),
        ]),
      );
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? 0);
      resolve({ status, headers, body: split === -1 ? '' : raw.slice(split + 4), error });
    });
    socket.write(head);
    if (!body) return;
    const filler = Buffer.alloc(64 * 1024, 'a');
    let sent = 0;
    const pump = () => {
      while (sent < body.bytes && !socket.destroyed) {
        const piece = filler.subarray(0, Math.min(filler.length, body.bytes - sent));
        sent += piece.length;
        const frame = body.chunked
          ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])
          : piece;
        if (!socket.write(frame)) return void socket.once('drain', pump);
      }
      if (body.chunked && !socket.destroyed) socket.write('0\r\n\r\n');
    };
    pump();
  });
}

function expectWireProblem(answer: WireAnswer, status: number, code: string) {
  const what = `${answer.status} ${answer.error ?? ''} ${answer.body.slice(0, 200)}`;
  expect(answer.status, what).toBe(status);
  expect(answer.error, what).toBeUndefined(); // not reset: the whole answer was read
  expect(answer.headers['content-type'], what).toContain('application/problem+json');
  expect(answer.headers.connection?.toLowerCase(), what).toBe('close');
  expect(Buffer.byteLength(answer.body, 'latin1'), what).toBe(Number(answer.headers['content-length']));
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  expect(Object.keys(problem).sort(), what).toEqual([
    'code',
    'detail',
    'requestId',
    'status',
    'title',
    'type',
  ]);
  expect(problem, what).toMatchObject({ status, code, type: `urn:velro:error:${code}` });
  expect(problem.requestId, what).toMatch(UUID);
  expect(answer.headers['x-request-id'], what).toBe(problem.requestId);
}

describe('oversized requests (huge headers, long URLs, bodies past the limit) get a problem+json answer, not a dropped connection', () => {
  let h: ApiHarness;
  let port: number;
  const MiB = 1024 * 1024;
  beforeAll(async () => {
    h = await startApi({ RATE_LIMIT_MAX: '100000', RATE_LIMIT_AUTH_MAX: '100000' });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    port = (h.app.server.address() as net.AddressInfo).port;
  });
  afterAll(() => h?.stop());

  it('answers headers over Node’s limit with 431 headers_too_large, even while the client still sends them', async () => {
    const small = await overTcp(
      port,
      `GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expectWireProblem(small, 431, 'headers_too_large');
    const huge = await overTcp(
      port,
      `GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(4 * MiB)}\r\n\r\n`,
    );
    expectWireProblem(huge, 431, 'headers_too_large');
  });

  it('answers a 20 KB URL with 414 uri_too_long, and a URL under Node’s limit but over 8 KiB too', async () => {
    expectWireProblem(
      await overTcp(port, `GET /v1/generations/${'a'.repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`),
      414,
      'uri_too_long',
    );
    expectWireProblem(
      await overTcp(
        port,
        `GET /health?q=${'a'.repeat(10_000)} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`,
      ),
      414,
      'uri_too_long',
    );
    // A path segment over the router's 100 characters.
    expectWireProblem(
      await overTcp(
        port,
        `GET /v1/projects/${'a'.repeat(101)} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`,
      ),
      414,
      'uri_too_long',
    );
  });

  it('answers what is not HTTP with 400 invalid_request', async () => {
    expectWireProblem(await overTcp(port, 'NOT HTTP AT ALL\r\n\r\n'), 400, 'invalid_request');
    expectWireProblem(
      await overTcp(port, 'GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n'),
      400,
      'invalid_request',
    );
  });

  it('answers a body past the limit with 413 payload_too_large, with content-length and chunked alike, and reads on until the client is done', async () => {
    const head = (framing: string) =>
      `POST /v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${framing}\r\n\r\n`;
    expectWireProblem(
      await overTcp(port, head(`content-length: ${8 * MiB}`), { bytes: 8 * MiB, chunked: false }),
      413,
      'payload_too_large',
    );
    expectWireProblem(
      await overTcp(port, head('transfer-encoding: chunked'), { bytes: 8 * MiB, chunked: true }),
      413,
      'payload_too_large',
    );
    // Just past the limit, announced: refused before a byte of the body is read.
    expectWireProblem(
      await overTcp(port, head(`content-length: ${256 * 1024 + 1}`), {
        bytes: 256 * 1024 + 1,
        chunked: false,
      }),
      413,
      'payload_too_large',
    );
  });

  it('lets a client that is refused before its body is read (401) read the answer too', async () => {
    const answer = await overTcp(
      port,
      `POST /v1/projects HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${8 * MiB}\r\n\r\n`,
      { bytes: 8 * MiB, chunked: false },
    );
    expectWireProblem(answer, 401, 'unauthorized');
  });

  it('keeps a normal keep-alive connection working', async () => {
    const answer = await overTcp(port, 'GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    expect(answer.status).toBe(200);
    expect(answer.error).toBeUndefined();
    expect(JSON.parse(answer.body)).toMatchObject({ status: 'healthy' });
  });
});
