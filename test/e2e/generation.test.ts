import { createHash } from 'node:crypto';
import { crc32, inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withUserTx } from '../../lib/db/pool';
import { createUser, startHarness, waitFor, type Harness } from '../support/context';

/** Checks a PNG independently of the encoder: signature, chunk CRCs, IHDR size, inflatable data. */
function decodePngHeader(buf: Buffer): { width: number; height: number } {
  expect(buf.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))).toBe(true);
  let offset = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  for (;;) {
    const length = buf.readUInt32BE(offset);
    const type = buf.toString('latin1', offset + 4, offset + 8);
    const data = buf.subarray(offset + 8, offset + 8 + length);
    const crc = buf.readUInt32BE(offset + 8 + length);
    expect(crc32(buf.subarray(offset + 4, offset + 8 + length))).toBe(crc);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
    }
    if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
    if (type === 'IEND') break;
  }
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe(height * (1 + width * 4));
  return { width, height };
}

async function ledgerRows(h: Harness, userId: string, generationId: string) {
  return withUserTx(h.db, userId, async (tx) => {
    const { rows } = await tx.query<{ kind: string; amount: number }>(
      'SELECT kind, amount FROM credit_transfers WHERE generation_id = $1 ORDER BY created_at',
      [generationId],
    );
    return rows;
  });
}

describe('a generation end to end, through HTTP', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '300' });
  });
  afterAll(() => h?.stop());

  it('renders a real PNG, serves it from the output URL and charges the credits exactly once', async () => {
    const user = await createUser(h.db, 100);
    const submit = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: user.auth,
      payload: {
        model: 'flux-pro-v1.1-ultra',
        input: { prompt: 'a lighthouse at dusk', aspect_ratio: '1:1' },
      },
    });
    expect(submit.statusCode).toBe(202);
    const created = submit.json();
    expect(created.credits).toEqual({ amount: 50, state: 'reserved' });
    expect(['queued', 'running']).toContain(created.status);

    const done = await waitFor(
      async () => (await h.app.inject({ url: `/v1/generations/${created.id}`, headers: user.auth })).json(),
      (g) => g.status === 'succeeded' || g.status === 'failed',
    );
    expect(done.status).toBe('succeeded');
    expect(done.credits).toEqual({ amount: 50, state: 'charged' });
    expect(done.outputs).toHaveLength(1);
    const output = done.outputs[0];
    expect(output).toMatchObject({ contentType: 'image/png', width: 1024, height: 1024 });

    // The output URL is signed: it works without the API key.
    const url = new URL(output.url);
    const file = await h.app.inject({ url: url.pathname + url.search });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-type']).toBe('image/png');
    const png = file.rawPayload;
    expect(png.length).toBe(output.bytes);
    expect(createHash('sha256').update(png).digest('hex')).toBe(output.sha256);
    expect(decodePngHeader(png)).toEqual({ width: 1024, height: 1024 });

    const credits = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    expect(credits).toEqual({ available: 50, reserved: 0, spent: 50 });
    expect(await ledgerRows(h, user.userId, created.id)).toEqual([
      { kind: 'reserve', amount: 50 },
      { kind: 'commit', amount: 50 },
    ]);
  });

  it('refuses a submit the credits do not cover with 402, leaving no row and no transfer', async () => {
    const user = await createUser(h.db, 40);
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: user.auth,
      payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: 'too expensive' } },
    });
    expect(res.statusCode).toBe(402);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ status: 402, code: 'insufficient_credits' });
    const list = (await h.app.inject({ url: '/v1/generations', headers: user.auth })).json();
    expect(list.data).toEqual([]);
    expect((await h.app.inject({ url: '/v1/credits', headers: user.auth })).json()).toEqual({
      available: 40,
      reserved: 0,
      spent: 0,
    });
  });

  it('rejects input the model does not accept with 400 naming the field, before anything is charged', async () => {
    const user = await createUser(h.db, 1000);
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: user.auth,
      payload: { model: 'kling-v2.1-master', input: { prompt: 'a cat', duration: '7' } },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'invalid_request' });
    expect(res.json().detail).toContain('input.duration');
    const credits = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    expect(credits).toEqual({ available: 1000, reserved: 0, spent: 0 });
  });

  it("answers 401 without a key and 404 for another user's generation", async () => {
    const owner = await createUser(h.db, 100);
    const other = await createUser(h.db, 100);
    const created = (
      await h.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: owner.auth,
        payload: { model: 'imagen4-ultra', input: { prompt: 'mine' } },
      })
    ).json();
    expect((await h.app.inject({ url: `/v1/generations/${created.id}` })).statusCode).toBe(401);
    const foreign = await h.app.inject({ url: `/v1/generations/${created.id}`, headers: other.auth });
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json().code).toBe('not_found');
  });
});

describe('a generation whose provider fails', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '200', LOCAL_PROVIDER_FAILURE_RATE: '1' });
  });
  afterAll(() => h?.stop());

  it('ends failed with a reason and refunds the reservation exactly once', async () => {
    const user = await createUser(h.db, 100);
    const created = (
      await h.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: user.auth,
        payload: { model: 'flux-pro-kontext-max', input: { prompt: 'doomed' } },
      })
    ).json();
    const done = await waitFor(
      async () => (await h.app.inject({ url: `/v1/generations/${created.id}`, headers: user.auth })).json(),
      (g) => g.status !== 'queued' && g.status !== 'running',
    );
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ code: 'provider_error' });
    expect(done.credits).toEqual({ amount: 60, state: 'refunded' });
    expect(done.outputs).toEqual([]);
    expect((await h.app.inject({ url: '/v1/credits', headers: user.auth })).json()).toEqual({
      available: 100,
      reserved: 0,
      spent: 0,
    });
    expect(await ledgerRows(h, user.userId, created.id)).toEqual([
      { kind: 'reserve', amount: 60 },
      { kind: 'release', amount: 60 },
    ]);
  });
});
