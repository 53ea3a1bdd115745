import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signAssetPath, signUploadPath } from '../../lib/auth/signed-urls';
import { withUserTx } from '../../lib/db/pool';
import { linkGenerationInput } from '../../lib/uploads/store';
import { createUser, startApi, systemDb, type ApiHarness } from '../support/context';
import { jpegImage, pngImage, quadrants, webpImage } from '../support/images';
import { addMember, createTeam, removeMember } from '../support/teams';

type User = Awaited<ReturnType<typeof createUser>>;

const MAX_BYTES = 200_000;
const MAX_PIXELS = 250_000; // 500 × 500
const PUBLIC_URL = 'https://api.velro.test';
/** The asset signing key startApi gives the app. */
const SIGNING_KEY = Buffer.alloc(32, 7);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const IMAGES = {
  'image/png': { make: pngImage, ext: 'png' },
  'image/jpeg': { make: jpegImage, ext: 'jpg' },
  'image/webp': { make: webpImage, ext: 'webp' },
} as const;
const TYPES = Object.keys(IMAGES) as (keyof typeof IMAGES)[];

/** A multipart/form-data body made by hand, as curl and other clients frame it. */
function multipart(
  parts: { name: string; bytes: Buffer; fileName?: string; type?: string }[],
  boundary = `----velro-${randomUUID()}`,
): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.fileName ? `; filename="${part.fileName}"` : ''}`;
    const head =
      `--${boundary}\r\ncontent-disposition: ${disposition}\r\n` +
      (part.type ? `content-type: ${part.type}\r\n` : '') +
      '\r\n';
    chunks.push(Buffer.from(head, 'utf8'), part.bytes, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** The body and content-type a browser's FormData becomes (undici's encoder, as fetch sends it). */
async function browserForm(bytes: Buffer, type: string, fileName: string) {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(bytes)], { type }), fileName);
  const request = new Request('http://localhost/', { method: 'POST', body: form });
  return {
    body: Buffer.from(await request.arrayBuffer()),
    contentType: request.headers.get('content-type')!,
  };
}

describe('uploads (POST/GET/DELETE /v1/uploads)', () => {
  let api: ApiHarness;
  let dataDir: string;

  beforeAll(async () => {
    // Its own storage folder, so that "nothing was stored" can be read off the files there.
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-uploads-'));
    api = await startApi({
      VELRO_DATA_DIR: dataDir,
      VELRO_PUBLIC_URL: PUBLIC_URL,
      UPLOAD_MAX_BYTES: String(MAX_BYTES),
      UPLOAD_MAX_PIXELS: String(MAX_PIXELS),
      RATE_LIMIT_MAX: '1000000',
    });
  });
  afterAll(async () => {
    await api?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const storedFiles = async () =>
    (await fs.readdir(path.join(dataDir, 'storage', 'uploads')).catch(() => [])).sort();
  const storedBytes = (key: string) => fs.readFile(path.join(dataDir, 'storage', key));

  /** Every upload row of the user, deleted and purged ones too (the velro_system login sees all). */
  async function rowsOf(userId: string) {
    const { rows } = await systemDb().query<{ id: string; storage_key: string; deleted_at: Date | null }>(
      'SELECT id, storage_key, deleted_at FROM uploads WHERE user_id = $1 ORDER BY created_at',
      [userId],
    );
    return rows;
  }

  const post = (
    auth: Record<string, string>,
    payload: Buffer | string,
    contentType: string | undefined,
    query = '',
    headers: Record<string, string> = {},
  ) =>
    api.app.inject({
      method: 'POST',
      url: `/v1/uploads${query}`,
      headers: { ...auth, ...(contentType ? { 'content-type': contentType } : {}), ...headers },
      payload,
    });

  async function uploaded(auth: Record<string, string>, bytes: Buffer, type: string, query = '') {
    const res = await post(auth, bytes, type, query);
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  const getUploadOf = (auth: Record<string, string>, id: string) =>
    api.app.inject({ url: `/v1/uploads/${id}`, headers: auth });
  const contentOf = (id: string, headers: Record<string, string> = {}, query = '') =>
    api.app.inject({ url: `/v1/uploads/${id}/content${query}`, headers });

  function expectProblem(res: Awaited<ReturnType<typeof post>>, status: number, code: string) {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ status, code });
    return res.json() as { detail: string; errors?: { path: string; message: string }[] };
  }

  it('stores a raw PNG, JPEG or WebP body and answers 201 with its view; the content route gives the exact bytes', async () => {
    const user = await createUser(api.db);
    for (const type of TYPES) {
      const bytes = IMAGES[type].make(64, 48, quadrants(64, 48));
      const res = await post(user.auth, bytes, type);
      expect(res.statusCode, res.body).toBe(201);
      const view = res.json();
      expect(res.headers.location).toBe(`/v1/uploads/${view.id}`);
      const createdAt = new Date(view.createdAt).getTime();
      expect(Math.abs(createdAt - Date.now())).toBeLessThan(60_000);
      expect(view).toEqual({
        id: view.id,
        teamId: null,
        createdBy: user.userId,
        contentType: type,
        bytes: bytes.length,
        width: 64,
        height: 48,
        sha256: sha256(bytes),
        url: `${PUBLIC_URL}/v1/uploads/${view.id}/content`,
        // UPLOAD_RETENTION_HOURS: 72 by default.
        expiresAt: new Date(createdAt + 72 * 3_600_000).toISOString(),
        createdAt: view.createdAt,
      });
      // Stored under uploads/<id>.<ext>, byte for byte.
      const key = `uploads/${view.id}.${IMAGES[type].ext}`;
      expect((await rowsOf(user.userId)).map((r) => r.storage_key)).toContain(key);
      expect((await storedBytes(key)).equals(bytes)).toBe(true);

      const content = await contentOf(view.id, user.auth);
      expect(content.statusCode).toBe(200);
      expect(content.headers['content-type']).toBe(type);
      expect(content.headers.etag).toBe(`"${sha256(bytes)}"`);
      expect(content.rawPayload.equals(bytes)).toBe(true);
      expect(await getUploadOf(user.auth, view.id).then((r) => r.json())).toEqual(view);
    }
  });

  it('stores the file of a multipart form: as a browser sends it, and as curl frames it', async () => {
    const user = await createUser(api.db);
    for (const type of TYPES) {
      const bytes = IMAGES[type].make(30, 20);
      const form = await browserForm(bytes, type, `cat.${IMAGES[type].ext}`);
      const view = await uploaded(user.auth, form.body, form.contentType);
      expect(view).toMatchObject({
        contentType: type,
        width: 30,
        height: 20,
        bytes: bytes.length,
        sha256: sha256(bytes),
      });
      expect((await contentOf(view.id, user.auth)).rawPayload.equals(bytes)).toBe(true);
    }
    // A part typed application/octet-stream (a file of unknown extension) or not typed at all, and
    // no file name: the content decides.
    const png = pngImage(9, 7);
    for (const part of [
      { name: 'file', bytes: png, fileName: 'photo.bin', type: 'application/octet-stream' },
      { name: 'file', bytes: png },
    ]) {
      const form = multipart([part], 'X-BOUNDARY');
      expect(await uploaded(user.auth, form.body, form.contentType)).toMatchObject({
        contentType: 'image/png',
        width: 9,
        height: 7,
      });
    }
  });

  it('takes a multipart upload over a real HTTP connection (fetch with FormData)', async () => {
    const served = await startApi({ VELRO_DATA_DIR: dataDir, VELRO_PUBLIC_URL: PUBLIC_URL });
    try {
      const address = await served.app.listen({ host: '127.0.0.1', port: 0 });
      const user = await createUser(served.db);
      const bytes = jpegImage(120, 80, quadrants(120, 80));
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(bytes)], { type: 'image/jpeg' }), 'cat.jpg');
      const res = await fetch(`${address}/v1/uploads`, {
        method: 'POST',
        headers: user.auth,
        body: form,
        signal: AbortSignal.timeout(10_000),
      });
      expect(res.status).toBe(201);
      const view = (await res.json()) as { id: string };
      expect(view).toMatchObject({
        contentType: 'image/jpeg',
        width: 120,
        height: 80,
        sha256: sha256(bytes),
      });
      const content = await fetch(`${address}/v1/uploads/${view.id}/content`, {
        headers: user.auth,
        signal: AbortSignal.timeout(10_000),
      });
      expect(Buffer.from(await content.arrayBuffer()).equals(bytes)).toBe(true);
    } finally {
      // A keep-alive socket that turned idle after close() began would hold it for the keep-alive
      // timeout: close() only drops the sockets idle at that moment.
      served.app.server.closeAllConnections();
      await served.stop();
    }
  });

  describe('bad input: a specific 4xx problem naming the field, and nothing stored', () => {
    let user: User;
    /** For the uploads at the caps, which are taken: `user` must have none. */
    let another: User;
    beforeAll(async () => {
      user = await createUser(api.db);
      another = await createUser(api.db);
    });

    /** Sends `attempt` and expects the refusal, with no row for the user and no new file. */
    async function refused(
      attempt: () => ReturnType<typeof post>,
      status: number,
      code: string,
      path?: string,
    ): Promise<{ detail: string }> {
      const files = await storedFiles();
      const problem = expectProblem(await attempt(), status, code);
      if (path) expect(problem.errors?.map((e) => e.path)).toEqual([path]);
      expect(await rowsOf(user.userId)).toEqual([]);
      expect(await storedFiles()).toEqual(files);
      return problem;
    }
    const raw = (bytes: Buffer | string, type?: string) => () => post(user.auth, bytes, type);
    const form = (part: { name?: string; bytes: Buffer; type?: string; fileName?: string }) => () => {
      const { body, contentType } = multipart([{ name: 'file', fileName: 'x', ...part }]);
      return post(user.auth, body, contentType);
    };

    it('not an image: 422 not_an_image', async () => {
      const text = Buffer.from('this is a text file, not a picture');
      await refused(raw(text, 'image/png'), 422, 'not_an_image', 'body');
      await refused(form({ bytes: text, type: 'image/png' }), 422, 'not_an_image', 'body.file');
      await refused(raw(Buffer.alloc(0), 'image/png'), 422, 'not_an_image', 'body');
      const html = Buffer.from('<html><script>alert(1)</script></html>');
      await refused(form({ bytes: html, type: 'text/html' }), 422, 'not_an_image', 'body.file');
    });

    it('an image format Velro does not take: 422 unsupported_image_type, naming it', async () => {
      const gif = Buffer.from('GIF89a\x01\x00\x01\x00\x80\x00\x00', 'latin1');
      const problem = await refused(raw(gif, 'image/png'), 422, 'unsupported_image_type', 'body');
      expect(problem.detail).toContain('GIF');
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"></svg>');
      await refused(form({ bytes: svg, type: 'image/svg+xml' }), 422, 'unsupported_image_type', 'body.file');
    });

    it('a declared type the content contradicts: 422 image_type_mismatch, naming both', async () => {
      const problem = await refused(raw(jpegImage(8, 8), 'image/png'), 422, 'image_type_mismatch', 'body');
      expect(problem.detail).toMatch(/image\/png.*image\/jpeg/);
      await refused(raw(webpImage(8, 8), 'image/jpeg'), 422, 'image_type_mismatch', 'body');
      await refused(
        form({ bytes: pngImage(8, 8), type: 'image/webp' }),
        422,
        'image_type_mismatch',
        'body.file',
      );
    });

    it('a body over UPLOAD_MAX_BYTES: 413 payload_too_large (raw and multipart); exactly the cap is taken', async () => {
      // Bytes after IEND are ignored by decoders (and by the check): a PNG of any length.
      const png = pngImage(10, 10);
      const ofLength = (n: number) => Buffer.concat([png, Buffer.alloc(n - png.length)]);
      await refused(raw(ofLength(MAX_BYTES + 1), 'image/png'), 413, 'payload_too_large');
      const big = multipart([
        { name: 'file', bytes: ofLength(MAX_BYTES), fileName: 'a.png', type: 'image/png' },
      ]);
      await refused(() => post(user.auth, big.body, big.contentType), 413, 'payload_too_large');
      // Chunked (no content-length): refused as it streams past the cap.
      await refused(
        () =>
          api.app.inject({
            method: 'POST',
            url: '/v1/uploads',
            headers: { ...user.auth, 'content-type': 'image/png', 'transfer-encoding': 'chunked' },
            payload: ofLength(MAX_BYTES + 1),
          }),
        413,
        'payload_too_large',
      );

      const exact = await post(another.auth, ofLength(MAX_BYTES), 'image/png');
      expect(exact.statusCode, exact.body).toBe(201);
      expect(exact.json().bytes).toBe(MAX_BYTES);
    });

    it('an image over UPLOAD_MAX_PIXELS: 422 too_many_pixels, with its size; the cap itself is taken', async () => {
      for (const type of TYPES) {
        const problem = await refused(raw(IMAGES[type].make(501, 500), type), 422, 'too_many_pixels', 'body');
        expect(problem.detail).toContain('501×500');
      }
      await refused(
        form({ bytes: pngImage(1000, 251), type: 'image/png' }),
        422,
        'too_many_pixels',
        'body.file',
      );
      expect((await post(another.auth, pngImage(500, 500), 'image/png')).statusCode).toBe(201);
    });

    it('a truncated image: 422 truncated_image', async () => {
      for (const type of TYPES) {
        const whole = IMAGES[type].make(40, 30, quadrants(40, 30));
        for (const cut of [whole.length - 1, Math.floor(whole.length / 2), 20]) {
          await refused(raw(whole.subarray(0, cut), type), 422, 'truncated_image', 'body');
        }
        await refused(
          form({ bytes: whole.subarray(0, whole.length - 2), type }),
          422,
          'truncated_image',
          'body.file',
        );
      }
    });

    it('a body that is neither an image type nor a form: 415 unsupported_media_type', async () => {
      const png = pngImage(4, 4);
      for (const type of [
        'application/json',
        'text/plain',
        'application/octet-stream',
        'image/gif',
        'image/jpg',
      ]) {
        await refused(raw(png, type), 415, 'unsupported_media_type', 'headers.content-type');
      }
      await refused(
        raw(JSON.stringify({ url: 'https://example.com/cat.png' }), 'application/json'),
        415,
        'unsupported_media_type',
      );
      await refused(
        () => api.app.inject({ method: 'POST', url: '/v1/uploads', headers: user.auth }),
        415,
        'unsupported_media_type',
      );
    });

    it('a form that is not one file in the field `file`: 400 invalid_request, saying why', async () => {
      const png = pngImage(4, 4);
      const cases: [{ body: Buffer; contentType: string }, RegExp][] = [
        [multipart([{ name: 'image', bytes: png, fileName: 'a.png' }]), /Unexpected form field "image"/],
        [
          multipart([
            { name: 'file', bytes: png, fileName: 'a.png' },
            { name: 'caption', bytes: Buffer.from('a cat') },
          ]),
          /Unexpected form field "caption"/,
        ],
        [
          multipart([
            { name: 'file', bytes: png, fileName: 'a.png' },
            { name: 'file', bytes: png, fileName: 'b.png' },
          ]),
          /more than one "file"/,
        ],
        [multipart([]), /no "file" field/],
        [{ body: png, contentType: 'multipart/form-data; boundary=abc' }, /no multipart boundary/],
        [{ body: png, contentType: 'multipart/form-data' }, /no boundary/],
      ];
      const cutShort = multipart([{ name: 'file', bytes: png, fileName: 'a.png' }], 'cut');
      cases.push([
        { body: cutShort.body.subarray(0, cutShort.body.length - 12), contentType: cutShort.contentType },
        /cut short/,
      ]);
      for (const [{ body, contentType }, message] of cases) {
        const problem = await refused(
          () => post(user.auth, body, contentType),
          400,
          'invalid_request',
          'body',
        );
        expect(problem.detail).toMatch(message);
      }
    });
  });

  it("lists the caller's uploads newest first, a page at a time; gets and deletes one; others get 404", async () => {
    const user = await createUser(api.db);
    const other = await createUser(api.db);
    const made: { id: string }[] = [];
    for (let i = 0; i < 3; i++) made.push(await uploaded(user.auth, pngImage(10 + i, 10), 'image/png'));
    const theirs = await uploaded(other.auth, pngImage(5, 5), 'image/png');

    const first = (await api.app.inject({ url: '/v1/uploads?limit=2', headers: user.auth })).json();
    expect(first.data.map((u: { id: string }) => u.id)).toEqual([made[2]!.id, made[1]!.id]);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = (
      await api.app.inject({ url: `/v1/uploads?limit=2&cursor=${first.nextCursor}`, headers: user.auth })
    ).json();
    expect(second).toEqual({ data: [made[0]], nextCursor: null });

    // Another user's upload: 404 on every route, never 403.
    expectProblem(await getUploadOf(user.auth, theirs.id), 404, 'not_found');
    expectProblem(await contentOf(theirs.id, user.auth), 404, 'not_found');
    expectProblem(
      await api.app.inject({ method: 'DELETE', url: `/v1/uploads/${theirs.id}`, headers: user.auth }),
      404,
      'not_found',
    );
    expect((await getUploadOf(other.auth, theirs.id)).statusCode).toBe(200);

    const del = await api.app.inject({
      method: 'DELETE',
      url: `/v1/uploads/${made[1]!.id}`,
      headers: user.auth,
    });
    expect(del.statusCode).toBe(204);
    expectProblem(await getUploadOf(user.auth, made[1]!.id), 404, 'not_found');
    expectProblem(await contentOf(made[1]!.id, user.auth), 404, 'not_found');
    expectProblem(
      await api.app.inject({ method: 'DELETE', url: `/v1/uploads/${made[1]!.id}`, headers: user.auth }),
      404,
      'not_found',
    );
    const after = (await api.app.inject({ url: '/v1/uploads', headers: user.auth })).json();
    expect(after.data.map((u: { id: string }) => u.id)).toEqual([made[2]!.id, made[0]!.id]);
    // Hidden, not gone: the retention removes its bytes (test/integration/upload-retention.test.ts).
    expect((await rowsOf(user.userId)).find((r) => r.id === made[1]!.id)?.deleted_at).toBeInstanceOf(Date);
    expect(await storedFiles()).toContain(`${made[1]!.id}.png`);

    expectProblem(await getUploadOf(user.auth, randomUUID()), 404, 'not_found');
    expectProblem(
      await api.app.inject({ url: '/v1/uploads/not-a-uuid', headers: user.auth }),
      400,
      'invalid_request',
    );
  });

  it('team uploads: members create and read, viewers only read, outsiders and removed members get 404', async () => {
    const owner = await createUser(api.db);
    const admin = await createUser(api.db);
    const member = await createUser(api.db);
    const member2 = await createUser(api.db);
    const viewer = await createUser(api.db);
    const outsider = await createUser(api.db);
    const teamId = await createTeam(api.db, owner.userId);
    await addMember(api.db, teamId, owner.userId, admin, 'admin');
    await addMember(api.db, teamId, owner.userId, member, 'member');
    await addMember(api.db, teamId, owner.userId, member2, 'member');
    await addMember(api.db, teamId, owner.userId, viewer, 'viewer');
    const forTeam = `?teamId=${teamId}`;

    const bytes = pngImage(16, 16, quadrants(16, 16));
    const shared = await uploaded(member.auth, bytes, 'image/png', forTeam);
    expect(shared).toMatchObject({ teamId, createdBy: member.userId });
    const personal = await uploaded(member.auth, pngImage(3, 3), 'image/png');

    // A viewer may not upload for the team (403 naming the role); an outsider does not see the team.
    const files = await storedFiles();
    const byViewer = expectProblem(await post(viewer.auth, bytes, 'image/png', forTeam), 403, 'forbidden');
    expect(byViewer).toMatchObject({ requiredRole: 'member' });
    expectProblem(await post(outsider.auth, bytes, 'image/png', forTeam), 404, 'not_found');
    expect(await rowsOf(viewer.userId)).toEqual([]);
    expect(await rowsOf(outsider.userId)).toEqual([]);
    expect(await storedFiles()).toEqual(files);

    // Every member reads it, its bytes too; the team's list has it and not the member's personal one.
    for (const reader of [owner, admin, member2, viewer]) {
      expect((await getUploadOf(reader.auth, shared.id)).json()).toEqual(shared);
      expect((await contentOf(shared.id, reader.auth)).rawPayload.equals(bytes)).toBe(true);
      const list = (await api.app.inject({ url: `/v1/uploads${forTeam}`, headers: reader.auth })).json();
      expect(list.data.map((u: { id: string }) => u.id)).toEqual([shared.id]);
    }
    const own = (await api.app.inject({ url: '/v1/uploads', headers: member.auth })).json();
    expect(own.data.map((u: { id: string }) => u.id)).toEqual([personal.id]);
    expectProblem(await getUploadOf(owner.auth, personal.id), 404, 'not_found');

    // Not a member: 404 for the upload and for the team's list.
    expectProblem(await getUploadOf(outsider.auth, shared.id), 404, 'not_found');
    expectProblem(await contentOf(shared.id, outsider.auth), 404, 'not_found');
    expectProblem(
      await api.app.inject({ url: `/v1/uploads${forTeam}`, headers: outsider.auth }),
      404,
      'not_found',
    );

    // A member may not delete another's upload (403 naming admin), nor a viewer anything.
    const byMember2 = await api.app.inject({
      method: 'DELETE',
      url: `/v1/uploads/${shared.id}`,
      headers: member2.auth,
    });
    expect(expectProblem(byMember2, 403, 'forbidden')).toMatchObject({ requiredRole: 'admin' });
    expectProblem(
      await api.app.inject({ method: 'DELETE', url: `/v1/uploads/${shared.id}`, headers: viewer.auth }),
      403,
      'forbidden',
    );

    // Removed from the team: its uploads are no longer its to read, the one it made included.
    await removeMember(teamId, member.userId);
    expectProblem(await getUploadOf(member.auth, shared.id), 404, 'not_found');
    expectProblem(await contentOf(shared.id, member.auth), 404, 'not_found');
    expectProblem(await post(member.auth, bytes, 'image/png', forTeam), 404, 'not_found');

    // An admin deletes a member's upload.
    const byAdmin = await api.app.inject({
      method: 'DELETE',
      url: `/v1/uploads/${shared.id}`,
      headers: admin.auth,
    });
    expect(byAdmin.statusCode).toBe(204);
    expectProblem(await getUploadOf(owner.auth, shared.id), 404, 'not_found');
  });

  describe('signed content URLs', () => {
    let user: User;
    let upload: { id: string };
    const bytes = webpImage(12, 10, quadrants(12, 10));
    beforeAll(async () => {
      user = await createUser(api.db);
      upload = await uploaded(user.auth, bytes, 'image/webp');
    });
    const signedQuery = (signed: string) => signed.slice(signed.indexOf('?'));

    it('serve the bytes without credentials while the signature holds', async () => {
      const signed = signUploadPath(SIGNING_KEY, upload.id, 600);
      expect(signed).toMatch(
        new RegExp(`^/v1/uploads/${upload.id}/content\\?expires=\\d+&signature=[\\w-]+$`),
      );
      const res = await api.app.inject({ url: signed });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('image/webp');
      expect(res.rawPayload.equals(bytes)).toBe(true);
      // Without a signature, credentials are needed.
      expectProblem(await contentOf(upload.id), 401, 'unauthorized');
    });

    it('refuse an expired, tampered or misdirected signature, and an asset signature: 403', async () => {
      const expired = signUploadPath(SIGNING_KEY, upload.id, 60, Date.now() - 3_600_000);
      expect(expectProblem(await api.app.inject({ url: expired }), 403, 'forbidden').detail).toMatch(
        /expired/,
      );

      const good = new URL(signUploadPath(SIGNING_KEY, upload.id, 600), PUBLIC_URL);
      const signature = good.searchParams.get('signature')!;
      const tampered = `${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`;
      const later = Number(good.searchParams.get('expires')) + 3600;
      for (const query of [
        `?expires=${good.searchParams.get('expires')}&signature=${tampered}`,
        `?expires=${later}&signature=${signature}`,
        `?signature=${signature}`,
        `?expires=${good.searchParams.get('expires')}`,
      ]) {
        expectProblem(await contentOf(upload.id, {}, query), 403, 'forbidden');
      }
      // Another upload's signature does not open this one.
      const another = await uploaded(user.auth, pngImage(2, 2), 'image/png');
      expectProblem(
        await contentOf(upload.id, {}, signedQuery(signUploadPath(SIGNING_KEY, another.id, 600))),
        403,
        'forbidden',
      );
      // An asset URL's signature for the same id, with the same key: not an upload's.
      const asAsset = signAssetPath(SIGNING_KEY, upload.id, 600);
      expectProblem(await contentOf(upload.id, {}, signedQuery(asAsset)), 403, 'forbidden');
      // ...and an upload's signature does not open an asset.
      const asUpload = signedQuery(signUploadPath(SIGNING_KEY, upload.id, 600));
      expectProblem(await api.app.inject({ url: `/v1/assets/${upload.id}${asUpload}` }), 403, 'forbidden');
    });

    it('serve a deleted upload only while a generation uses it', async () => {
      const unused = await uploaded(user.auth, pngImage(6, 6), 'image/png');
      const used = await uploaded(user.auth, pngImage(7, 7), 'image/png');
      const generationId = randomUUID();
      await withUserTx(api.db, user.userId, async (tx) => {
        await tx.query(
          `INSERT INTO generations (id, user_id, model, input, credits, provider, status, stage)
           VALUES ($1, $2, 'wan-pro', '{"prompt":"x"}', 1, 'local', 'running', 'waiting for provider')`,
          [generationId, user.userId],
        );
        expect(await linkGenerationInput(tx, { generationId, field: 'image_url', uploadId: used.id })).toBe(
          true,
        );
      });
      for (const { id } of [unused, used]) {
        expect(
          (await api.app.inject({ method: 'DELETE', url: `/v1/uploads/${id}`, headers: user.auth }))
            .statusCode,
        ).toBe(204);
      }
      const open = (id: string) => api.app.inject({ url: signUploadPath(SIGNING_KEY, id, 600) });
      expectProblem(await open(unused.id), 404, 'not_found');
      const res = await open(used.id);
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.equals(pngImage(7, 7))).toBe(true);
    });
  });

  it('honours Idempotency-Key: the same image again is the same upload, whatever the form boundary', async () => {
    const user = await createUser(api.db);
    const bytes = pngImage(20, 20, quadrants(20, 20));
    const key = { 'idempotency-key': randomUUID() };
    const first = await post(user.auth, bytes, 'image/png', '', key);
    expect(first.statusCode).toBe(201);
    const again = await post(user.auth, bytes, 'image/png', '', key);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(await rowsOf(user.userId)).toHaveLength(1);

    // A browser retrying a form picks a new boundary: still the same request.
    const formKey = { 'idempotency-key': randomUUID() };
    const sent = [];
    for (const boundary of ['first-boundary', 'second-boundary']) {
      const form = multipart([{ name: 'file', bytes, fileName: 'a.png', type: 'image/png' }], boundary);
      sent.push(await post(user.auth, form.body, form.contentType, '', formKey));
    }
    expect(sent.map((r) => r.statusCode)).toEqual([201, 201]);
    expect(sent[1]!.json().id).toBe(sent[0]!.json().id);
    expect(await rowsOf(user.userId)).toHaveLength(2);

    // The same key for another image, or for a team: a different request.
    expectProblem(await post(user.auth, pngImage(21, 20), 'image/png', '', key), 422, 'idempotency_mismatch');
    const teamId = await createTeam(api.db, user.userId);
    expectProblem(
      await post(user.auth, bytes, 'image/png', `?teamId=${teamId}`, key),
      422,
      'idempotency_mismatch',
    );
    expect(await rowsOf(user.userId)).toHaveLength(2);
  });

  it('documents both request bodies, the image responses and every refusal in OpenAPI', async () => {
    const doc = (await api.app.inject({ url: '/openapi.json' })).json();
    const create = doc.paths['/v1/uploads'].post;
    expect(Object.keys(create.requestBody.content)).toEqual([
      'image/png',
      'image/jpeg',
      'image/webp',
      'multipart/form-data',
    ]);
    expect(create.requestBody.content['image/png'].schema).toMatchObject({
      type: 'string',
      contentMediaType: 'image/png',
    });
    expect(create.requestBody.content['multipart/form-data'].schema).toMatchObject({
      type: 'object',
      required: ['file'],
      properties: { file: { type: 'string' } },
    });
    expect(Object.keys(create.responses)).toEqual(
      expect.arrayContaining(['201', '400', '401', '403', '404', '409', '413', '415', '422']),
    );
    for (const code of [
      'not_an_image',
      'unsupported_image_type',
      'image_type_mismatch',
      'truncated_image',
      'too_many_pixels',
    ]) {
      expect(create.description).toContain(code);
    }
    expect(create.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(['teamId', 'idempotency-key']),
    );
    const content = doc.paths['/v1/uploads/{id}/content'].get;
    expect(Object.keys(content.responses['200'].content)).toEqual(['image/png', 'image/jpeg', 'image/webp']);
    expect(content.security).toEqual([]);
    expect(Object.keys(doc.paths['/v1/uploads/{id}'])).toEqual(['get', 'delete']);
  });
});
