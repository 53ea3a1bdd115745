import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx, withUserTx } from '../../lib/db/pool';
import { createStorage } from '../../lib/wiring/from-config';
import { insertUpload } from '../../lib/uploads/store';
import { createUser, startHarness, submitGeneration, systemDb, type Harness } from '../support/context';
import { pngImage } from '../support/images';
import { addMember, createTeam, grantTeam } from '../support/teams';

// The API half of input images: what a submit does with `image_url` / `end_image_url` before
// anything starts. In production mode (https only, no private addresses): every bad reference is a
// 4xx naming the field, with no generation and no credit moved; a good one is stored as upload:<id>.

describe('image references in a generation input', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ WEBHOOK_ALLOW_HTTP: 'false', WEBHOOK_ALLOW_PRIVATE_URLS: 'false' });
  });
  afterAll(() => h?.stop());

  /** An upload of `userId` (for `teamId` if given), stored the way POST /v1/uploads stores one. */
  async function upload(userId: string, teamId: string | null = null): Promise<string> {
    const id = randomUUID();
    const bytes = pngImage(64, 48);
    const storageKey = `uploads/${id}.png`;
    await createStorage(h.config).put(storageKey, Readable.from([bytes]), 'image/png');
    await withUserTx(h.db, userId, (tx) =>
      insertUpload(tx, {
        id,
        userId,
        teamId,
        storageKey,
        contentType: 'image/png',
        bytes: bytes.length,
        width: 64,
        height: 48,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      }),
    );
    return id;
  }

  const submit = (auth: Record<string, string>, payload: Record<string, unknown>) =>
    h.app.inject({ method: 'POST', url: '/v1/generations', headers: auth, payload });

  async function generationCount(userId: string): Promise<number> {
    return withSystemTx(systemDb(), async (tx) => {
      const { rows } = await tx.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM generations WHERE user_id = $1',
        [userId],
      );
      return rows[0]!.n;
    });
  }

  /** Submits, expects the problem, and that nothing was stored or reserved. */
  async function refused(
    user: { userId: string; auth: Record<string, string> },
    payload: Record<string, unknown>,
    expected: { status: number; field: string; message: RegExp },
  ) {
    const credits = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    const res = await submit(user.auth, payload);
    expect(res.statusCode, res.body).toBe(expected.status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = res.json();
    expect(body.detail).toMatch(new RegExp(`^${expected.field.replace(/\./g, '\\.')}: `));
    expect(body.errors).toEqual([{ path: expected.field, message: expect.stringMatching(expected.message) }]);
    expect((await h.app.inject({ url: '/v1/credits', headers: user.auth })).json()).toEqual(credits);
    expect(await generationCount(user.userId)).toBe(0);
    return body;
  }

  it('refuses an image on a model that takes none', async () => {
    const user = await createUser(h.db, 1000);
    const id = await upload(user.userId);
    await refused(
      user,
      { model: 'imagen4-ultra', input: { prompt: 'x', image_url: `upload:${id}` } },
      { status: 400, field: 'input.image_url', message: /^imagen4-ultra takes no image$/ },
    );
    await refused(
      user,
      {
        model: 'kling-v2.1-master',
        input: { prompt: 'x', image_url: `upload:${id}`, end_image_url: `upload:${id}` },
      },
      { status: 400, field: 'input.end_image_url', message: /kling-v2.1-master takes no end_image_url/ },
    );
  });

  it('refuses an http URL and a private address in production, naming input.image_url', async () => {
    const user = await createUser(h.db, 1000);
    await refused(
      user,
      { model: 'kling-v2.1-master', input: { prompt: 'x', image_url: 'http://images.example.com/cat.png' } },
      { status: 400, field: 'input.image_url', message: /must use https/ },
    );
    for (const [url, why] of [
      ['https://10.0.0.7/cat.png', /10\.0\.0\.7 is a private address/],
      ['https://169.254.169.254/latest/meta-data', /link-local/],
      ['https://[::1]/cat.png', /loopback/],
      ['https://localhost/cat.png', /not a public host name/],
    ] as const) {
      await refused(
        user,
        { model: 'wan-pro', input: { prompt: 'x', image_url: url } },
        { status: 400, field: 'input.image_url', message: why },
      );
    }
  });

  it("answers 404 for someone else's upload, as for one that does not exist", async () => {
    const owner = await createUser(h.db, 0);
    const other = await createUser(h.db, 1000);
    const theirs = await upload(owner.userId);
    const body = await refused(
      other,
      { model: 'kling-v2.1-master', input: { prompt: 'x', image_url: `upload:${theirs}` } },
      { status: 404, field: 'input.image_url', message: new RegExp(`no upload ${theirs}`) },
    );
    expect(body.code).toBe('not_found');
    await refused(
      other,
      { model: 'kling-v2.1-master', input: { prompt: 'x', image_url: `upload:${randomUUID()}` } },
      { status: 404, field: 'input.image_url', message: /no upload/ },
    );
  });

  it('refuses a malformed upload reference and an end image without a start image', async () => {
    const user = await createUser(h.db, 1000);
    await refused(
      user,
      { model: 'hailuo-02-pro', input: { prompt: 'x', image_url: 'upload:12345' } },
      { status: 400, field: 'input.image_url', message: /upload:<id>/ },
    );
    const id = await upload(user.userId);
    await refused(
      user,
      { model: 'hailuo-02-pro', input: { prompt: 'x', end_image_url: `upload:${id}` } },
      { status: 400, field: 'input.end_image_url', message: /needs a start image/ },
    );
    await refused(
      user,
      { model: 'veo3', input: { prompt: 'x', aspect_ratio: 'auto' } },
      { status: 400, field: 'input.aspect_ratio', message: /give image_url/ },
    );
  });

  it("refuses an upload that is not the generation's owner's: personal for a team, a team's for personal", async () => {
    const owner = await createUser(h.db, 1000);
    const teamId = await createTeam(h.db, owner.userId);
    await grantTeam(teamId, 1000);
    const personal = await upload(owner.userId);
    const teams = await upload(owner.userId, teamId);
    const credits = (await h.app.inject({ url: '/v1/credits', headers: owner.auth })).json();
    const asTeam = await submit(owner.auth, {
      model: 'wan-pro',
      teamId,
      input: { prompt: 'x', image_url: `upload:${personal}` },
    });
    expect(asTeam.statusCode).toBe(400);
    expect(asTeam.json().errors).toEqual([
      { path: 'input.image_url', message: expect.stringMatching(/personal upload; a team's generation/) },
    ]);
    const asPersonal = await submit(owner.auth, {
      model: 'wan-pro',
      input: { prompt: 'x', image_url: `upload:${teams}` },
    });
    expect(asPersonal.statusCode).toBe(400);
    expect(asPersonal.json().errors[0].message).toMatch(/belongs to a team; a personal generation/);
    expect((await h.app.inject({ url: '/v1/credits', headers: owner.auth })).json()).toEqual(credits);
    expect(await generationCount(owner.userId)).toBe(0);
  });

  it('stores an upload given by reference or by its own URL as upload:<id>', async () => {
    const user = await createUser(h.db, 1000);
    const start = await upload(user.userId);
    const end = await upload(user.userId);
    const ownUrl = `http://localhost:${h.config.PORT}/v1/uploads/${end.toUpperCase()}/content`;
    const id = await submitGeneration(h.app, user.auth, {
      model: 'hailuo-02-pro',
      input: { prompt: 'the cat walks away', image_url: `/v1/uploads/${start}`, end_image_url: ownUrl },
    });
    const generation = (await h.app.inject({ url: `/v1/generations/${id}`, headers: user.auth })).json();
    expect(generation.input).toMatchObject({
      image_url: `upload:${start}`,
      end_image_url: `upload:${end}`,
    });
    // The `url` POST /v1/uploads answers with is accepted as it is.
    const posted = await h.app.inject({
      method: 'POST',
      url: '/v1/uploads',
      headers: { ...user.auth, 'content-type': 'image/png' },
      payload: pngImage(40, 30),
    });
    expect(posted.statusCode, posted.body).toBe(201);
    const made = posted.json() as { id: string; url: string };
    const fromUrl = await submitGeneration(h.app, user.auth, {
      model: 'flux-pro-kontext-max',
      input: { prompt: 'make it blue', image_url: made.url },
    });
    const edit = (await h.app.inject({ url: `/v1/generations/${fromUrl}`, headers: user.auth })).json();
    expect(edit.input.image_url).toBe(`upload:${made.id}`);
    // A team member may use the team's upload (made by another member) for a team generation.
    const teamId = await createTeam(h.db, user.userId);
    await grantTeam(teamId, 1000);
    const member = await createUser(h.db, 0);
    await addMember(h.db, teamId, user.userId, member, 'member');
    const teams = await upload(user.userId, teamId);
    const teamGen = await submitGeneration(h.app, member.auth, {
      model: 'kling-v2.1-master',
      teamId,
      input: { prompt: 'x', image_url: `upload:${teams}` },
    });
    const seen = (await h.app.inject({ url: `/v1/generations/${teamGen}`, headers: member.auth })).json();
    expect(seen.input.image_url).toBe(`upload:${teams}`);
  });
});
