import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAssetPath } from '../../lib/auth/signed-urls';
import { createUser, startHarness, waitFor, type Harness } from '../support/context';

type User = Awaited<ReturnType<typeof createUser>>;

/**
 * The first wall: through the API, user B can reach nothing of user A's. (The second wall, the
 * database's row-level security, is tested directly in test/integration/rls.test.ts.)
 */
describe("tenancy through the API: B cannot see or touch A's things", () => {
  let h: Harness;
  let a: User;
  let b: User;
  let generation: { id: string; status: string; outputs: { id: string; url: string }[] };
  let project: { id: string };
  let aKey: { id: string; key: string };
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '100', ASSET_URL_TTL_SECONDS: '3' });
    a = await createUser(h.db, 500);
    b = await createUser(h.db, 500);
    project = (
      await h.app.inject({ method: 'POST', url: '/v1/projects', headers: a.auth, payload: { name: "A's" } })
    ).json();
    const submit = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: a.auth,
      payload: { model: 'imagen4-ultra', input: { prompt: 'private to A' }, projectId: project.id },
    });
    expect(submit.statusCode).toBe(202);
    generation = await waitFor(
      async () =>
        (await h.app.inject({ url: `/v1/generations/${submit.json().id}`, headers: a.auth })).json(),
      (g) => g.status === 'succeeded',
    );
    expect(generation.outputs).toHaveLength(1);
    aKey = (
      await h.app.inject({ method: 'POST', url: '/v1/api-keys', headers: a.auth, payload: { name: 'a2' } })
    ).json();
  });
  afterAll(() => h?.stop());

  const as = (user: User, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    h.app.inject({ method, url, headers: user.auth, ...(payload ? { payload } : {}) });

  it("answers 404 not_found to every route naming one of A's ids", async () => {
    const attempts: [string, () => ReturnType<typeof as>][] = [
      ['generation', () => as(b, 'GET', `/v1/generations/${generation.id}`)],
      ['cancel', () => as(b, 'POST', `/v1/generations/${generation.id}/cancel`)],
      ['project', () => as(b, 'GET', `/v1/projects/${project.id}`)],
      ['rename project', () => as(b, 'PATCH', `/v1/projects/${project.id}`, { name: 'mine now' })],
      ['delete project', () => as(b, 'DELETE', `/v1/projects/${project.id}`)],
      ['asset (unsigned, with B key)', () => as(b, 'GET', `/v1/assets/${generation.outputs[0]!.id}`)],
      ['revoke key', () => as(b, 'DELETE', `/v1/api-keys/${aKey.id}`)],
      [
        'submit in project',
        () =>
          as(b, 'POST', '/v1/generations', {
            model: 'imagen4-ultra',
            input: { prompt: 'x' },
            projectId: project.id,
          }),
      ],
    ];
    for (const [what, attempt] of attempts) {
      const res = await attempt();
      expect(res.statusCode, what).toBe(404);
      expect(res.headers['content-type'], what).toContain('application/problem+json');
      expect(res.json().code, what).toBe('not_found');
    }
    // ...and nothing of A's changed.
    expect((await as(a, 'GET', `/v1/projects/${project.id}`)).json().name).toBe("A's");
    expect(
      (await h.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${aKey.key}` } })).statusCode,
    ).toBe(200);
    expect((await as(a, 'GET', `/v1/assets/${generation.outputs[0]!.id}`)).statusCode).toBe(200);
  });

  it("lists none of A's generations, projects, keys or transactions to B", async () => {
    const text = async (url: string) => (await as(b, 'GET', url)).body;
    const secrets = [generation.id, project.id, aKey.id, a.userId];
    for (const url of [
      '/v1/generations',
      `/v1/generations?projectId=${project.id}`,
      '/v1/projects',
      '/v1/api-keys',
      '/v1/credits/transactions?limit=100',
      '/v1/me',
    ]) {
      const body = await text(url);
      for (const s of secrets) expect(body, `${url} shows ${s}`).not.toContain(s);
    }
    const ledger = (await as(b, 'GET', '/v1/credits/transactions?limit=100')).json();
    expect(ledger.data).toEqual([expect.objectContaining({ kind: 'grant', amount: 500 })]);
    // A sees its own.
    const mine = (await as(a, 'GET', '/v1/credits/transactions?limit=100')).json();
    expect(mine.data.map((t: { generationId: string | null }) => t.generationId)).toContain(generation.id);
  });

  it('serves a signed output URL without credentials until it expires (ASSET_URL_TTL_SECONDS), then 403', async () => {
    const fresh = (await as(a, 'GET', `/v1/generations/${generation.id}`)).json();
    const url = new URL(fresh.outputs[0].url);
    const expires = Number(url.searchParams.get('expires'));
    expect(expires - Date.now() / 1000).toBeLessThanOrEqual(3);
    expect((await h.app.inject({ url: url.pathname + url.search })).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, (expires + 1) * 1000 - Date.now()));
    const late = await h.app.inject({ url: url.pathname + url.search });
    expect(late.statusCode).toBe(403);
    expect(late.headers['content-type']).toContain('application/problem+json');
    expect(late.json()).toMatchObject({ code: 'forbidden', detail: expect.stringContaining('expired') });
  });

  it('answers 403 to a tampered signature, expiry or asset id', async () => {
    const assetId = generation.outputs[0]!.id;
    const good = new URL(`http://x${signAssetPath(Buffer.alloc(32, 7), assetId, 600)}`);
    expect((await h.app.inject({ url: good.pathname + good.search })).statusCode).toBe(200);
    const sig = good.searchParams.get('signature')!;
    const expires = Number(good.searchParams.get('expires'));
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    const otherAsset = randomUUID();
    const tampered = [
      `/v1/assets/${assetId}?expires=${expires}&signature=${flip(sig)}`,
      `/v1/assets/${assetId}?expires=${expires + 3600}&signature=${sig}`,
      `/v1/assets/${otherAsset}?expires=${expires}&signature=${sig}`,
      `/v1/assets/${assetId}?signature=${sig}`,
      `/v1/assets/${assetId}?expires=${expires}`,
      `/v1/assets/${assetId}?expires=${expires}&signature=`,
    ];
    for (const url of tampered) {
      const res = await h.app.inject({ url });
      expect(res.statusCode, url).toBe(403);
      expect(res.json().code, url).toBe('forbidden');
    }
    // A signature made with another key is worthless, and an expired one says so.
    const foreign = signAssetPath(Buffer.alloc(32, 8), assetId, 600);
    expect((await h.app.inject({ url: foreign })).statusCode).toBe(403);
    const expired = signAssetPath(Buffer.alloc(32, 7), assetId, 60, Date.now() - 120_000);
    const res = await h.app.inject({ url: expired });
    expect(res.statusCode).toBe(403);
    expect(res.json().detail).toContain('expired');
  });

  it('lets a web page on another origin embed outputs (Cross-Origin-Resource-Policy)', async () => {
    const asset = await as(a, 'GET', `/v1/assets/${generation.outputs[0]!.id}`);
    expect(asset.headers['cross-origin-resource-policy']).toBe('cross-origin');
    expect(asset.headers['x-content-type-options']).toBe('nosniff');
    const json = await as(a, 'GET', '/v1/me');
    expect(json.headers['cross-origin-resource-policy']).toBe('same-origin');
  });
});
