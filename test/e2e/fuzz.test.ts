import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../lib/auth/api-keys';
import { jwtKey, signJwt } from '../../lib/auth/jwt';
import { withSystemTx } from '../../lib/db/pool';
import { ensureDatabase, migrate } from '../../lib/db/migrate';
import { startHarness, testStack, type Harness } from '../support/context';

/*
 * Property-based fuzzing of the whole HTTP surface, taken from the OpenAPI document: malformed
 * bodies, query strings, path parameters, headers and credentials, biased towards invalid input.
 * Properties: no 5xx; every error is application/problem+json with a code and the request id; and
 * nothing is written except what a 2xx answer says was written.
 *
 * The run has a database of its own, so that other test files writing in parallel do not disturb
 * the row counts.
 */

const COUNTED = ['users', 'api_keys', 'projects', 'generations', 'credit_transfers', 'assets'] as const;
type Counts = Record<(typeof COUNTED)[number], number>;

interface Operation {
  method: string;
  path: string; // OpenAPI form: /v1/projects/{id}
}

const FIELD_NAMES = [
  'email',
  'password',
  'name',
  'model',
  'input',
  'projectId',
  'webhookUrl',
  'userId',
  'credits',
  'reason',
  'expiresAt',
  'id',
  'prompt',
  '__proto__',
  'constructor',
];
const QUERY_NAMES = ['limit', 'cursor', 'projectId', 'status', 'model', 'expires', 'signature', 'x'];
const NASTY = [
  '',
  ' ',
  '0',
  '-1',
  '1e309',
  'NaN',
  'null',
  'true',
  '[]',
  '{}',
  '..',
  '../../etc/passwd',
  '%00',
  '%',
  "' OR 1=1 --",
  '<script>alert(1)</script>',
  '\u0000',
  '😀',
  'a'.repeat(5000),
  '00000000-0000-0000-0000-000000000000',
  'imagen4-ultra',
  'fal',
];

describe('fuzzing every route', () => {
  let h: Harness;
  let operations: Operation[];
  /** `METHOD /path` -> the statuses the document gives it. */
  let documented: Map<string, Set<string>>;
  let creds: string[];
  let knownIds: string[];
  let database: string;

  const counts = () =>
    withSystemTx(h.systemDb, async (tx) => {
      const out = {} as Counts;
      for (const t of COUNTED) {
        out[t] = (await tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`)).rows[0]!.n;
      }
      return out;
    });

  beforeAll(async () => {
    database = `velro_fuzz_${randomUUID().slice(0, 8)}`;
    const url = await ensureDatabase(testStack().databaseUrl, database);
    await migrate(url);
    // The same logins, on this database.
    const on = (login: string) => Object.assign(new URL(login), { pathname: `/${database}` }).toString();
    h = await startHarness({
      DATABASE_APP_URL: on(testStack().appDatabaseUrl),
      DATABASE_SYSTEM_URL: on(testStack().systemDatabaseUrl),
      RATE_LIMIT_MAX: '1000000',
      RATE_LIMIT_AUTH_MAX: '1000000',
      LOCAL_PROVIDER_LATENCY_MS: '100',
    });
    const doc = (await h.app.inject({ url: '/openapi.json' })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    documented = new Map(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.entries(ops).map(([m, op]) => [
          `${m.toUpperCase()} ${path}`,
          new Set(Object.keys((op as { responses?: object }).responses ?? {})),
        ]),
      ),
    );
    operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ['get', 'post', 'patch', 'put', 'delete'].includes(m))
        .map((m) => ({ method: m.toUpperCase(), path })),
    );
    // Readiness answers 503 by design when a dependency is down; it takes no input anyway.
    operations = operations.filter((o) => o.path !== '/ready');

    // One user (no credits, so no generation can be admitted) with real credentials of each kind,
    // plus a project and a spare key whose ids the fuzzer may aim at.
    const key = generateApiKey();
    const spare = generateApiKey();
    const admin = generateApiKey();
    const seeded = await withSystemTx(h.systemDb, async (tx) => {
      const id = (
        await tx.query<{ id: string }>('SELECT create_user($1, NULL) AS id', [
          `fuzz-${randomUUID()}@fuzz.test`,
        ])
      ).rows[0]!.id;
      const adminId = (
        await tx.query<{ id: string }>(`SELECT create_user($1, NULL, 'admin') AS id`, [
          `fuzz-admin-${randomUUID()}@fuzz.test`,
        ])
      ).rows[0]!.id;
      await tx.query('SELECT create_api_key($1, $2, $3, $4)', [id, 'main', key.prefix, key.hash]);
      await tx.query('SELECT create_api_key($1, $2, $3, $4)', [adminId, 'admin', admin.prefix, admin.hash]);
      const spareId = (
        await tx.query<{ id: string }>('SELECT create_api_key($1, $2, $3, $4) AS id', [
          id,
          'spare',
          spare.prefix,
          spare.hash,
        ])
      ).rows[0]!.id;
      const projectId = (
        await tx.query<{ id: string }>(
          `INSERT INTO projects (user_id, name) VALUES ($1, 'fuzz') RETURNING id`,
          [id],
        )
      ).rows[0]!.id;
      return { id, spareId, projectId };
    });
    // Not the user's own id: an admin grant to it would give credits, and then the worker's
    // asynchronous writes (reservations, outputs) would blur the accounting below.
    knownIds = [seeded.spareId, seeded.projectId];
    const jwt = await jwtKey(h.config);
    const revoked = generateApiKey();
    creds = [
      `Bearer ${key.key}`,
      `Bearer ${key.key}`,
      `Bearer ${signJwt(jwt, { sub: seeded.id, role: 'user' }, 600).token}`,
      `Bearer ${admin.key}`,
      `Bearer ${signJwt(jwt, { sub: seeded.id, role: 'admin' }, 600, Date.now() - 3600_000).token}`,
      `Bearer ${signJwt(Buffer.alloc(32, 5), { sub: seeded.id, role: 'admin' }, 600).token}`,
      `Bearer ${revoked.key}`,
      `bearer ${key.key}`,
      `Bearer  ${key.key} x`,
      `Basic ${Buffer.from('a:b').toString('base64')}`,
    ];
  });
  afterAll(async () => {
    await h?.stop();
    const admin = new pg.Client({ connectionString: testStack().databaseUrl });
    await admin.connect();
    await admin
      .query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`)
      .catch(() => undefined);
    await admin.end();
  });

  it('answers no 5xx, only problem+json errors with a code, and writes only what it reports', async () => {
    const printable = (max: number) => fc.string({ unit: 'grapheme-ascii', maxLength: max });
    const anyText = fc.oneof(
      { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
      { weight: 2, arbitrary: fc.constantFrom(...NASTY) },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
    );
    const validish = fc.oneof(
      fc.uuid().map((u) => `fz-${u}@fuzz.test`),
      fc.constantFrom(
        'correct horse battery',
        'imagen4-ultra',
        'flux-pro-v1.1-ultra',
        'https://example.com/hook',
      ),
      fc.constant({ prompt: 'a fuzzy cat' }),
      fc.constantFrom(...[0, 1, 10, 100, 1e9 + 1]),
      fc.constant(new Date(Date.now() + 86_400_000).toISOString()),
      fc.constant(null),
    );
    const value = fc.oneof(
      { weight: 3, arbitrary: anyText },
      { weight: 2, arbitrary: validish },
      { weight: 1, arbitrary: fc.integer() },
      { weight: 1, arbitrary: fc.double() },
      { weight: 1, arbitrary: fc.boolean() },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
      { weight: 1, arbitrary: fc.constant(undefined) },
    );
    // Valid bodies of the create routes, each maybe with one field overwritten by junk: these get
    // past validation, so that lookups, conflicts and the write accounting are exercised too.
    const template = fc.oneof(
      fc.uuid().map((u) => ({ email: `fz-${u}@fuzz.test`, password: 'correct horse battery' }) as object),
      fc.constant({ name: 'fuzzed' }),
      fc.constant({ model: 'imagen4-ultra', input: { prompt: 'a fuzzy cat' } }),
      fc.uuid().map((u) => ({ userId: u, credits: 10, reason: 'fuzz' })),
    );
    const nearlyValid = fc
      .tuple(template, fc.option(fc.tuple(fc.constantFrom(...FIELD_NAMES), value), { freq: 2 }))
      .map(([t, change]) => (change ? { ...t, [change[0]]: change[1] } : t));
    const body = fc.oneof(
      { weight: 3, arbitrary: nearlyValid },
      { weight: 5, arbitrary: fc.dictionary(fc.constantFrom(...FIELD_NAMES), value, { maxKeys: 5 }) },
      { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
      { weight: 2, arbitrary: fc.string({ maxLength: 200 }).map((raw) => ({ raw })) },
      { weight: 1, arbitrary: fc.constant(undefined) },
    );
    const contentType = fc.option(
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'application/json; charset=utf-16',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/octet-stream',
        '*/*',
        'garbage',
      ),
      { freq: 3 },
    );
    const pathValue = fc.oneof(
      { weight: 3, arbitrary: fc.uuid() },
      { weight: 2, arbitrary: fc.constantFrom(...knownIds) },
      { weight: 3, arbitrary: anyText },
    );
    const query = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_NAMES), printable(10)), anyText), {
      maxLength: 4,
    });
    const headers = fc.record(
      {
        authorization: fc.oneof(
          { weight: 6, arbitrary: fc.constantFrom(...creds.slice(0, 4)) }, // the valid ones
          { weight: 2, arbitrary: fc.constantFrom(...creds.slice(4)) },
          { weight: 1, arbitrary: printable(120) },
          { weight: 1, arbitrary: printable(120).map((s) => `Bearer ${s}`) },
          { weight: 1, arbitrary: printable(60).map((s) => `Bearer vk_${s}`) },
        ),
        'idempotency-key': printable(300),
        prefer: fc.oneof(
          printable(20),
          fc.constantFrom('wait=1', 'wait=0', 'wait=61', 'wait=-1', 'wait=abc'),
        ),
        accept: printable(30),
      },
      { requiredKeys: [] },
    );
    const request = fc.record({
      op: fc.oneof(
        { weight: 9, arbitrary: fc.constantFrom(...operations) },
        {
          weight: 1,
          arbitrary: fc.record({
            method: fc.constantFrom('PUT', 'OPTIONS', 'PATCH'),
            path: fc.constantFrom(...operations.map((o) => o.path)),
          }),
        },
      ),
      pathValue,
      query,
      headers,
      body,
      contentType,
    });

    const before = await counts();
    const expected = { users: 0, projects: 0, api_keys: 0, generations: 0, credit_transfers: 0, assets: 0 };
    const seen = new Map<number, number>();
    const grants = new Set<string>();
    let runs = 0;

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        runs++;
        const path = r.op.path.replace(/\{\w+\}/g, () => encodeURIComponent(r.pathValue));
        const qs = r.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        const url = qs ? `${path}?${qs}` : path;
        const hdrs: Record<string, string> = { ...r.headers };
        let payload: string | undefined;
        if (r.body !== undefined && r.op.method !== 'GET') {
          const raw = r.body as { raw?: unknown };
          payload =
            typeof raw === 'object' &&
            raw !== null &&
            typeof raw.raw === 'string' &&
            Object.keys(raw).length === 1
              ? raw.raw
              : JSON.stringify(r.body);
          hdrs['content-type'] = r.contentType ?? 'application/json';
        }
        const res = await h.app.inject({ method: r.op.method as 'GET', url, headers: hdrs, payload });
        seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1);
        const what = `${r.op.method} ${url} -> ${res.statusCode} ${res.body.slice(0, 300)}`;

        expect(res.statusCode, what).toBeLessThan(500);
        // The document is exact: whatever a documented operation answers, it documents.
        const statuses = documented.get(`${r.op.method} ${r.op.path}`);
        if (statuses) expect([...statuses], `undocumented status: ${what}`).toContain(String(res.statusCode));
        expect(res.headers['x-request-id'], what).toBeTruthy();
        if (res.statusCode >= 400) {
          expect(String(res.headers['content-type']), what).toContain('application/problem+json');
          const problem = res.json();
          expect(problem.code, what).toMatch(/^[a-z_]+$/);
          expect(problem.status, what).toBe(res.statusCode);
          expect(problem.requestId, what).toBe(res.headers['x-request-id']);
        }
        // Account for the writes the API reports.
        const route = `${r.op.method} ${r.op.path}`;
        if (route === 'POST /v1/auth/register' && res.statusCode === 201) expected.users++;
        if (route === 'POST /v1/projects' && res.statusCode === 201) expected.projects++;
        if (route === 'DELETE /v1/projects/{id}' && res.statusCode === 204) expected.projects--;
        if (route === 'POST /v1/api-keys' && res.statusCode === 201) expected.api_keys++;
        if (route === 'POST /v1/admin/credit-grants' && res.statusCode === 201) grants.add(res.json().id);
        if (route === 'POST /v1/generations' && res.statusCode === 202) expected.generations++;
      }),
      {
        numRuns: Number(process.env.FUZZ_RUNS) || 600,
        interruptAfterTimeLimit: 40_000,
        markInterruptAsFailure: false,
        seed: Number(process.env.FUZZ_SEED) || undefined,
      },
    );

    const after = await counts();
    const delta = Object.fromEntries(COUNTED.map((t) => [t, after[t] - before[t]]));
    expected.credit_transfers = grants.size; // a replayed grant id answers 201 again but writes nothing
    if (process.env.FUZZ_VERBOSE) console.log({ runs, statuses: Object.fromEntries(seen), delta });
    expect(delta).toEqual(expected);
    expect(runs).toBeGreaterThanOrEqual(100);
    // Not vacuous: the generators got past authentication and into validation and lookups.
    for (const status of [400, 401, 404])
      expect(seen.get(status) ?? 0, `no ${status} seen`).toBeGreaterThan(5);
  }, 90_000);
});
