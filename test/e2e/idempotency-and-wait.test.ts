import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startHarness, type Harness } from '../support/context';

describe('Idempotency-Key on POST /v1/generations', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '300' });
  });
  afterAll(() => h?.stop());

  const submit = (auth: Record<string, string>, key: string | undefined, prompt: string, extra = {}) =>
    h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: { ...auth, ...(key ? { 'idempotency-key': key } : {}), ...extra },
      payload: { model: 'imagen4-ultra', input: { prompt } },
    });

  it('returns the first response, status and body alike, to a retry with the same body', async () => {
    const user = await createUser(h.db, 100);
    const key = randomUUID();
    const first = await submit(user.auth, key, 'a quiet harbour');
    expect(first.statusCode).toBe(202);
    const again = await submit(user.auth, key, 'a quiet harbour');
    expect(again.statusCode).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    const list = (await h.app.inject({ url: '/v1/generations', headers: user.auth })).json();
    expect(list.data).toHaveLength(1);
    expect(
      (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json().reserved +
        (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json().spent,
    ).toBe(45);
  });

  it('refuses the same key with a different body (422 idempotency_mismatch), creating nothing', async () => {
    const user = await createUser(h.db, 100);
    const key = randomUUID();
    expect((await submit(user.auth, key, 'first')).statusCode).toBe(202);
    const other = await submit(user.auth, key, 'second');
    expect(other.statusCode).toBe(422);
    expect(other.json()).toMatchObject({ code: 'idempotency_mismatch' });
    expect((await h.app.inject({ url: '/v1/generations', headers: user.auth })).json().data).toHaveLength(1);
  });

  it('creates exactly one generation from concurrent duplicates', async () => {
    const user = await createUser(h.db, 1000);
    const key = randomUUID();
    const answers = await Promise.all(Array.from({ length: 8 }, () => submit(user.auth, key, 'same time')));
    const ids = new Set(answers.map((a) => a.json().id));
    expect(answers.every((a) => a.statusCode === 202)).toBe(true);
    expect(ids.size).toBe(1);
    expect((await h.app.inject({ url: '/v1/generations', headers: user.auth })).json().data).toHaveLength(1);
    const credits = (await h.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    expect(credits.available).toBe(1000 - 45);
  });

  it('keeps keys per user: the same key from another user is a new request', async () => {
    const a = await createUser(h.db, 100);
    const b = await createUser(h.db, 100);
    const key = randomUUID();
    const fromA = (await submit(a.auth, key, 'shared key')).json();
    const fromB = (await submit(b.auth, key, 'shared key')).json();
    expect(fromB.id).not.toBe(fromA.id);
  });

  it('replays a 402 too, and rejects keys longer than 255 characters', async () => {
    const poor = await createUser(h.db, 10);
    const key = randomUUID();
    expect((await submit(poor.auth, key, 'too dear')).statusCode).toBe(402);
    const again = await submit(poor.auth, key, 'too dear');
    expect(again.statusCode).toBe(402);
    expect(again.json().code).toBe('insufficient_credits');
    const long = await submit(poor.auth, 'k'.repeat(256), 'x');
    expect(long.statusCode).toBe(400);
    expect(long.json().code).toBe('invalid_request');
  });
});

describe('Prefer: wait=N', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '300' });
  });
  afterAll(() => h?.stop());

  it('holds the submit until the generation ends, then answers 200 with its outputs', async () => {
    const user = await createUser(h.db, 100);
    const res = await h.app.inject({
      method: 'POST',
      url: '/v1/generations',
      headers: { ...user.auth, prefer: 'wait=30' },
      payload: { model: 'imagen4-ultra', input: { prompt: 'waited for' } },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['preference-applied']).toBe('wait=30');
    expect(res.json()).toMatchObject({ status: 'succeeded', credits: { state: 'charged' } });
    expect(res.json().outputs).toHaveLength(1);
  });

  it('answers 202 with the current state when N runs out first', async () => {
    const slow = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '5000' });
    try {
      const user = await createUser(slow.db, 100);
      const started = Date.now();
      const res = await slow.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: { ...user.auth, prefer: 'wait=1' },
        payload: { model: 'imagen4-ultra', input: { prompt: 'not yet' } },
      });
      expect(res.statusCode).toBe(202);
      expect(res.json().status).toBe('running');
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    } finally {
      await slow.stop();
    }
  });

  it('rejects a wait out of range with 400, before anything is created', async () => {
    const user = await createUser(h.db, 100);
    for (const prefer of ['wait=0', 'wait=61', 'wait=abc', 'wait=1.5']) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: { ...user.auth, prefer },
        payload: { model: 'imagen4-ultra', input: { prompt: 'x' } },
      });
      expect(res.statusCode, prefer).toBe(400);
    }
    expect((await h.app.inject({ url: '/v1/generations', headers: user.auth })).json().data).toEqual([]);
  });
});

describe('Idempotency-Key on POST /v1/projects', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(() => h?.stop());

  it('creates one project for any number of retries, and refuses the key with another body', async () => {
    const user = await createUser(h.db);
    const key = randomUUID();
    const create = (name: string) =>
      h.app.inject({
        method: 'POST',
        url: '/v1/projects',
        headers: { ...user.auth, 'idempotency-key': key },
        payload: { name },
      });
    const first = await create('Spring');
    expect(first.statusCode).toBe(201);
    const again = await create('Spring');
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect((await create('Autumn')).statusCode).toBe(422);
    const list = (await h.app.inject({ url: '/v1/projects', headers: user.auth })).json();
    expect(list.data).toHaveLength(1);
  });
});
