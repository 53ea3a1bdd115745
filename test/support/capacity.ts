import { expect } from 'vitest';
import type { FakeFal, FalJob } from '../fakes/fal-server';
import { systemDb, waitFor, type Harness } from './context';
import { getGeneration, type User } from './provider-e2e';
import { parseEvent, type SseEvent } from './sse';

export const WAITING = 'waiting for capacity';

/** The worker and API pointed at the fal fake (webhooks reach the listening API), with capacity settings. */
export const falCapacityEnv = (fal: FakeFal, capacity: Record<string, string>) => ({
  VELRO_PROVIDER: 'fal',
  FAL_KEY: 'test',
  FAL_QUEUE_URL: fal.url,
  FAL_JWKS_URL: fal.jwksUrl,
  PROVIDER_POLL_INITIAL_MS: '200',
  PROVIDER_HTTP_TIMEOUT_MS: '1000',
  ...capacity,
});

/** Submits a generation (with body fields besides model and input, e.g. priority) and expects 202. */
export async function submitWith(
  h: Harness,
  user: User,
  prompt: string,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await h.app.inject({
    method: 'POST',
    url: '/v1/generations',
    headers: user.auth,
    payload: { model: 'flux-pro-v1.1-ultra', input: { prompt }, ...extra },
  });
  expect(res.statusCode, res.body).toBe(202);
  return res.json().id as string;
}

/** Waits until the generation is queued for a slot (its request is in the pool's queue). */
export const untilWaiting = (h: Harness, user: User, id: string) =>
  waitFor(
    () => getGeneration(h, user, id),
    (g) => g.stage === WAITING,
  );

/** The fake's jobs in submission order. */
export const jobsInOrder = (fal: FakeFal): FalJob[] => [...fal.jobs.values()];

/**
 * The most of these jobs ever in flight at the fake at once: each from its submit until it
 * completed there (submittedAt + queueMs + runMs, the fake's own clock). A job that ends at the
 * instant another starts does not overlap it: Velro frees a slot only after it has seen the end.
 */
export function maxOverlap(jobs: FalJob[], queueMs: number): number {
  const edges = jobs.flatMap((j) => [
    { at: j.submittedAt, step: 1 },
    { at: j.submittedAt + queueMs + j.runMs, step: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.step - b.step);
  let now = 0;
  let most = 0;
  for (const e of edges) {
    now += e.step;
    most = Math.max(most, now);
  }
  return most;
}

/** The pool's grants of these generations, in the order the scheduler made them. */
export async function grantOrder(ids: string[]): Promise<string[]> {
  const { rows } = await systemDb().query<{ generation_id: string }>(
    `SELECT generation_id FROM capacity_requests
     WHERE generation_id = ANY($1) AND granted_at IS NOT NULL ORDER BY granted_at, generation_id`,
    [ids],
  );
  return rows.map((r) => r.generation_id);
}

export async function capacityRequest(id: string) {
  const { rows } = await systemDb().query<{
    granted_at: Date | null;
    released_at: Date | null;
    release_reason: string | null;
  }>('SELECT granted_at, released_at, release_reason FROM capacity_requests WHERE generation_id = $1', [id]);
  return rows[0];
}

/**
 * Reads a Server-Sent Events stream over real HTTP until an event satisfies `wanted` (then hangs
 * up: a waiting generation's stream stays open), the server closes it, or `timeoutMs` passes.
 * Answers the events read.
 */
export async function readEventsUntil(
  url: string,
  headers: Record<string, string>,
  wanted: (e: SseEvent) => boolean,
  timeoutMs = 20_000,
): Promise<SseEvent[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(url, { headers, signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const decoder = new TextDecoder();
    let buffered = '';
    for await (const chunk of res.body!) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      const blocks = buffered.split('\n\n');
      buffered = blocks.pop()!;
      for (const block of blocks) {
        const e = parseEvent(block);
        if (!e) continue;
        events.push(e);
        if (wanted(e)) return events;
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return events;
}

/** An account's limits as an admin sees them (GET /v1/admin/accounts/:id/limits). */
export async function limitsOf(h: Harness, admin: User, accountId: string) {
  const res = await h.app.inject({ url: `/v1/admin/accounts/${accountId}/limits`, headers: admin.auth });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

export const patchLimits = (h: Harness, caller: User, accountId: string, payload: unknown) =>
  h.app.inject({
    method: 'PATCH',
    url: `/v1/admin/accounts/${accountId}/limits`,
    headers: caller.auth,
    payload: payload as object,
  });

/** Sets an account's limits as an admin, expecting 200. */
export async function setLimits(h: Harness, admin: User, accountId: string, limits: Record<string, unknown>) {
  const res = await patchLimits(h, admin, accountId, limits);
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}
