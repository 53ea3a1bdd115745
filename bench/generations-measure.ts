// Small measuring tools of the generations bench: percentiles, submits over HTTP, waiting for
// generations to end, the zero-cost provider's own clock.
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { withSystemTx, type SystemDb } from '../lib/db/pool';
import { generationWorkflowId } from '../workflows/definitions';
import type { ZeroCostJob, ZeroCostStats } from './zero-cost-provider';

export interface Latencies {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function latencies(values: number[]): Latencies {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.at(-1) ?? NaN };
}

export const median = (values: number[]) => latencies(values).p50;

export interface Submitted {
  id: string;
  tag: string;
  /** Date.now() when the POST was sent, and how long until its 202. */
  sentAt: number;
  ms: number;
}

/**
 * POST /v1/generations for one model (flux-pro-v1.1-ultra, 1:1: a 1024² PNG on the local renderer).
 * `latencyMs` is the zero-cost provider's latency for this job (its default when left out).
 */
export function submitter(apiUrl: string, apiKey: string) {
  return async (latencyMs?: number): Promise<Submitted> => {
    const tag = randomUUID();
    const prompt = `bench tag=${tag}${latencyMs === undefined ? '' : ` latency-ms=${latencyMs}`}`;
    const sentAt = Date.now();
    const t = performance.now();
    const res = await fetch(`${apiUrl}/v1/generations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'flux-pro-v1.1-ultra', input: { prompt, aspect_ratio: '1:1' } }),
    });
    if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    return { id, tag, sentAt, ms: performance.now() - t };
  };
}

/** A submit that failed (a 503 after the admission timeout, say): counted, not thrown. */
export interface Refused {
  error: string;
}

export const isSubmitted = (r: Submitted | Refused): r is Submitted => 'id' in r;

/** Runs `submit`, turning a failure into a Refused. */
export const orRefused = (submit: () => Promise<Submitted>) => (): Promise<Submitted | Refused> =>
  submit().catch((err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }));

/** `n` calls of `fn` at once; resolves with their results and the wall time of them all. */
export async function atOnce<T>(
  n: number,
  fn: (i: number) => Promise<T>,
): Promise<{ results: T[]; seconds: number }> {
  const t = performance.now();
  const results = await Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
  return { results, seconds: (performance.now() - t) / 1000 };
}

/** `fn` started at a steady `perSecond` for `seconds` (open loop: a slow answer never delays the next). */
export async function openLoop<T>(perSecond: number, seconds: number, fn: () => Promise<T>): Promise<T[]> {
  const started = performance.now();
  const runs: Promise<T>[] = [];
  for (let i = 0; i < perSecond * seconds; i++) {
    const wait = started + (i * 1000) / perSecond - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    runs.push(fn());
  }
  return Promise.all(runs);
}

/** At most `limit` calls of `fn` running at once, over `n` calls. */
export async function pooled<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) {
        const i = next++;
        results[i] = await fn(i);
      }
    }),
  );
  return results;
}

/** Waits until every one of these generations has ended (completed_at set: stored and charged, or refunded). */
export async function waitEnded(
  db: SystemDb,
  ids: string[],
  timeoutMs: number,
  everyMs = 100,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await withSystemTx(db, (tx) =>
      tx.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM generations WHERE id = ANY($1::uuid[]) AND completed_at IS NOT NULL',
        [ids],
      ),
    );
    if (rows[0]!.n === ids.length) return;
    if (Date.now() > until) {
      throw new Error(
        `${ids.length - rows[0]!.n} of ${ids.length} generations still running after ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Each generation's status and completed_at (ms since the epoch). */
export async function endings(
  db: SystemDb,
  ids: string[],
): Promise<Map<string, { status: string; endedAt: number }>> {
  const { rows } = await withSystemTx(db, (tx) =>
    tx.query<{ id: string; status: string; ended_at: number }>(
      `SELECT id, status, extract(epoch FROM completed_at) * 1000 AS ended_at
         FROM generations WHERE id = ANY($1::uuid[])`,
      [ids],
    ),
  );
  return new Map(rows.map((r) => [r.id, { status: r.status, endedAt: Number(r.ended_at) }]));
}

/** How many of these generations ended with each status. */
export async function statusCounts(db: SystemDb, ids: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const end of (await endings(db, ids)).values()) counts[end.status] = (counts[end.status] ?? 0) + 1;
  return counts;
}

/** The zero-cost provider's jobs by the bench's tag. */
export async function providerJobs(providerUrl: string): Promise<Map<string, ZeroCostJob>> {
  const res = await fetch(`${providerUrl}/__stats`);
  const { jobs } = (await res.json()) as ZeroCostStats;
  return new Map(jobs.filter((j) => j.tag).map((j) => [j.tag!, j]));
}

/**
 * Per generation: submit → completed_at (total), minus the provider's own time (its submit to the job
 * being ready there). Also the provider's time until it first answered COMPLETED (includes the poll).
 */
export async function overheads(db: SystemDb, providerUrl: string, submitted: Submitted[]) {
  const [ends, jobs] = await Promise.all([
    endings(
      db,
      submitted.map((s) => s.id),
    ),
    providerJobs(providerUrl),
  ]);
  const total: number[] = [];
  const overhead: number[] = [];
  const untilCompletedAnswer: number[] = [];
  for (const s of submitted) {
    const end = ends.get(s.id);
    const job = jobs.get(s.tag);
    if (!end || !job || !Number.isFinite(end.endedAt)) continue;
    total.push(end.endedAt - s.sentAt);
    overhead.push(end.endedAt - s.sentAt - (job.readyAt - job.submittedAt));
    if (job.firstCompletedAt) untilCompletedAnswer.push(job.firstCompletedAt - job.submittedAt);
  }
  const statuses: Record<string, number> = {};
  for (const end of ends.values()) statuses[end.status] = (statuses[end.status] ?? 0) + 1;
  return {
    statuses,
    total: latencies(total),
    overhead: latencies(overhead),
    providerAnswer: latencies(untilCompletedAnswer),
  };
}

/** Terminates these generations' workflows (cleanup of parked ones; their rows stay unsettled). */
export async function terminateAll(temporal: Client, ids: string[]): Promise<void> {
  await pooled(ids.length, 50, (i) =>
    temporal.workflow
      .getHandle(generationWorkflowId(ids[i]!))
      .terminate('bench cleanup')
      .catch(() => undefined),
  );
}
