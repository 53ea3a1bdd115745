// Postgres going away between a submit's work and the keeping of its idempotent answer (seen in the
// cluster fault test: the onSend write failed, and the client got a 500 from Fastify's fallback
// serializer). The answer must still go out, and a retry with the key meet the same generation.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startHarness, type Harness } from '../support/context';

describe('an idempotent answer that cannot be kept', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '300' });
  });
  afterAll(() => h?.stop());

  it('still answers the submit, and a retry with the key converges on the same generation', async () => {
    const user = await createUser(h.db, 100);
    const key = randomUUID();
    const submit = () =>
      h.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: { ...user.auth, 'idempotency-key': key },
        payload: { model: 'imagen4-ultra', input: { prompt: 'a harbour in fog' } },
      });

    // The pool refuses to connect, as Postgres does while it restarts, only for the answer's write
    // (api/plugins/idempotency.ts, rememberAnswer).
    const connect = h.app.db.connect.bind(h.app.db);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    let refusals = 0;
    h.app.db.connect = ((...args: unknown[]) => {
      if (new Error().stack?.includes('rememberAnswer')) {
        refusals++;
        return Promise.reject(refused);
      }
      return (connect as (...a: unknown[]) => unknown)(...args);
    }) as typeof h.app.db.connect;
    let first;
    try {
      first = await submit();
    } finally {
      h.app.db.connect = connect;
    }
    expect(refusals).toBe(1);
    expect(first.statusCode).toBe(202);
    const id = first.json().id;

    const again = await submit();
    expect(again.statusCode).toBe(202);
    expect(again.headers['idempotent-replayed']).toBeUndefined(); // ran again: nothing was kept
    expect(again.json().id).toBe(id);
    const list = (await h.app.inject({ url: '/v1/generations', headers: user.auth })).json();
    expect(list.data.map((g: { id: string }) => g.id)).toEqual([id]);
    // The retry's answer is kept: a third try is a replay.
    const third = await submit();
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(third.json().id).toBe(id);
  });
});
