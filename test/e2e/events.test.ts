import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, startHarness, submitGeneration, type Harness } from '../support/context';
import { parseEvent, type SseEvent } from '../support/sse';

/** Reads a whole Server-Sent Events stream over real HTTP until the server closes it. */
async function readStream(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; events: SseEvent[] }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
  if (res.status !== 200) return { status: res.status, events: [] };
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const text = await res.text();
  const events = text
    .split('\n\n')
    .map(parseEvent)
    .filter((e): e is SseEvent => e !== undefined);
  return { status: res.status, events };
}

describe('GET /v1/generations/:id/events', () => {
  let h: Harness;
  let base: string;
  beforeAll(async () => {
    h = await startHarness({ LOCAL_PROVIDER_LATENCY_MS: '2500' });
    await h.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => h?.stop());

  const submit = (auth: Record<string, string>) =>
    submitGeneration(h.app, auth, { model: 'imagen4-ultra', input: { prompt: 'streamed' } });

  it('streams status and progress to many clients at once, ends with done and closes', async () => {
    const user = await createUser(h.db, 100);
    const id = await submit(user.auth);
    const streams = await Promise.all(
      Array.from({ length: 5 }, () => readStream(`${base}/v1/generations/${id}/events`, user.auth)),
    );
    for (const { status, events } of streams) {
      expect(status).toBe(200);
      const names = events.map((e) => e.event);
      expect(names[0]).toBe('status');
      expect(names).toContain('progress');
      expect(names[names.length - 1]).toBe('done');
      const done = events[events.length - 1]!.data as { status: string; outputs: unknown[] };
      expect(done.status).toBe('succeeded');
      expect(done.outputs).toHaveLength(1);
      const statuses = events
        .filter((e) => e.event === 'status')
        .map((e) => (e.data as { status: string }).status);
      expect(statuses[statuses.length - 1]).toBe('succeeded');
      // Ids only grow, so a client can resume from any of them.
      const ids = events.map((e) => e.id!);
      expect(ids.every((v, i) => i === 0 || v >= ids[i - 1]!)).toBe(true);
    }
  });

  it('resumes after Last-Event-ID with only what changed since', async () => {
    const user = await createUser(h.db, 100);
    const id = await submit(user.auth);
    const full = await readStream(`${base}/v1/generations/${id}/events`, user.auth);
    const firstId = full.events[0]!.id!;
    const resumed = await readStream(`${base}/v1/generations/${id}/events`, {
      ...user.auth,
      'last-event-id': firstId,
    });
    expect(resumed.events.length).toBeGreaterThan(0);
    expect(resumed.events.every((e) => e.id! > firstId || e.event === 'done')).toBe(true);
    expect(resumed.events[resumed.events.length - 1]!.event).toBe('done');
    // Resuming from the very end replays nothing but still closes.
    const lastId = full.events[full.events.length - 1]!.id!;
    const nothing = await readStream(`${base}/v1/generations/${id}/events`, {
      ...user.auth,
      'last-event-id': lastId,
    });
    expect(nothing.events.filter((e) => e.event !== 'done')).toEqual([]);
  });

  it("answers 404 for another user's generation and 401 without a key", async () => {
    const owner = await createUser(h.db, 100);
    const other = await createUser(h.db, 100);
    const id = await submit(owner.auth);
    expect((await readStream(`${base}/v1/generations/${id}/events`, other.auth)).status).toBe(404);
    expect((await readStream(`${base}/v1/generations/${id}/events`, {})).status).toBe(401);
  });
});
