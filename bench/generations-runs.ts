// The generation runs the bench measures, each over real HTTP against the stack of
// bench/generations-stack.ts: idle submits, throughput, admission, submits under load, worker memory.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../lib/paths';
import { generationWorkflowId } from '../workflows/definitions';
import { meanHistoryCost, type HistoryCost } from './generations-history';
import {
  atOnce,
  isSubmitted,
  latencies,
  openLoop,
  orRefused,
  overheads,
  pooled,
  providerJobs,
  statusCounts,
  submitter,
  terminateAll,
  waitEnded,
  type Latencies,
  type Refused,
  type Submitted,
} from './generations-measure';
import type { BenchStack } from './generations-stack';

/** Long enough that a parked job never finishes during the bench. */
const PARKED_MS = 600_000;
const AT_ONCE = 200;

/** Submits that did not answer 202, and the first one's error. */
export interface Refusals {
  refused: number;
  firstError?: string;
}

function refusals(results: (Submitted | Refused)[]): Refusals {
  const failed = results.filter((r): r is Refused => !isSubmitted(r));
  return failed.length
    ? { refused: failed.length, firstError: failed[0]!.error.slice(0, 300) }
    : { refused: 0 };
}

export interface IdleRun {
  submit: Latencies;
  /** Submit → completed_at, and that minus the provider's own time (zero here). */
  total: Latencies;
  overhead: Latencies;
  history: HistoryCost;
  /** Provider status calls per generation. */
  statusCalls: number;
  /** How many ended with each status (all should have succeeded). */
  statuses: Record<string, number>;
}

/** Sequential submits with nothing else running: each generation ends before the next is sent. */
export async function idleSubmits(s: BenchStack, n: number): Promise<IdleRun> {
  const submit = submitter(s.falApi, s.apiKey);
  const done: Submitted[] = [];
  for (let i = 0; i < n; i++) {
    const sub = await submit(0);
    await s.temporal.workflow.getHandle(generationWorkflowId(sub.id)).result();
    done.push(sub);
  }
  const o = await overheads(s.systemDb, s.providerUrl, done);
  const jobs = await providerJobs(s.providerUrl);
  const calls = done.map((d) => jobs.get(d.tag)?.statusCalls ?? NaN);
  return {
    submit: latencies(done.map((d) => d.ms)),
    total: o.total,
    overhead: o.overhead,
    history: await meanHistoryCost(
      s.temporal,
      done.slice(0, 20).map((d) => generationWorkflowId(d.id)),
    ),
    statusCalls: calls.reduce((a, b) => a + b, 0) / calls.length,
    statuses: o.statuses,
  };
}

export interface ThroughputRun extends Refusals {
  /** Generations that ended (stored and charged) per second, from the first submit to the last end. */
  perSecond: number;
  seconds: number;
  submit: Latencies;
  statuses: Record<string, number>;
  /** Zero-cost provider only: per generation, as in IdleRun. */
  total?: Latencies;
  overhead?: Latencies;
}

/** `AT_ONCE` generations submitted at once, until the last is stored and charged. */
export async function throughput(s: BenchStack, provider: 'zero-cost' | 'local'): Promise<ThroughputRun> {
  const submit = submitter(provider === 'local' ? s.localApi : s.falApi, s.apiKey);
  const t = performance.now();
  const all = await atOnce(
    AT_ONCE,
    orRefused(() => submit(provider === 'local' ? undefined : 0)),
  );
  const results = all.results.filter(isSubmitted);
  await waitEnded(
    s.systemDb,
    results.map((r) => r.id),
    240_000,
  );
  const seconds = (performance.now() - t) / 1000;
  const run: ThroughputRun = {
    perSecond: results.length / seconds,
    seconds,
    ...refusals(all.results),
    submit: latencies(results.map((r) => r.ms)),
    statuses: await statusCounts(
      s.systemDb,
      results.map((r) => r.id),
    ),
  };
  if (provider === 'local') return run;
  const o = await overheads(s.systemDb, s.providerUrl, results);
  return { ...run, total: o.total, overhead: o.overhead };
}

/** Generations parked at the zero-cost provider (in flight, never finishing), shared by the runs below. */
export class Parked {
  readonly ids: string[] = [];
  /** Submits of parked generations that did not answer 202. */
  refused = 0;
  constructor(private readonly s: BenchStack) {}

  /** Submits until `count` are parked, `concurrency` at a time. */
  async topUp(count: number, concurrency = 50): Promise<void> {
    const submit = submitter(this.s.falApi, this.s.apiKey);
    const more = await pooled(
      Math.max(0, count - this.ids.length),
      concurrency,
      orRefused(() => submit(PARKED_MS)),
    );
    this.ids.push(...more.filter(isSubmitted).map((m) => m.id));
    this.refused += refusals(more).refused;
  }

  /** 200 submits at once with nothing able to finish: admitted (202) per second. */
  async admission(): Promise<Refusals & { perSecond: number; submit: Latencies }> {
    const submit = submitter(this.s.falApi, this.s.apiKey);
    const all = await atOnce(
      AT_ONCE,
      orRefused(() => submit(PARKED_MS)),
    );
    const results = all.results.filter(isSubmitted);
    this.ids.push(...results.map((r) => r.id));
    return {
      perSecond: results.length / all.seconds,
      ...refusals(all.results),
      submit: latencies(results.map((r) => r.ms)),
    };
  }

  async terminate(): Promise<void> {
    await terminateAll(this.s.temporal, this.ids.splice(0));
  }
}

/**
 * Submits at `perSecond` for `seconds` while `AT_ONCE` generations are parked in flight (polled as
 * usual); the arrivals themselves run to the end at the zero-cost provider.
 */
export async function submitsUnderLoad(
  s: BenchStack,
  parked: Parked,
  perSecond: number,
  seconds: number,
): Promise<
  Refusals & {
    submit: Latencies;
    statuses: Record<string, number>;
    inFlight: number;
    endedWithinSeconds: number;
  }
> {
  await parked.topUp(AT_ONCE);
  const submit = submitter(s.falApi, s.apiKey);
  const t = performance.now();
  const all = await openLoop(
    perSecond,
    seconds,
    orRefused(() => submit(0)),
  );
  const arrivals = all.filter(isSubmitted);
  await waitEnded(
    s.systemDb,
    arrivals.map((a) => a.id),
    180_000,
  );
  return {
    submit: latencies(arrivals.map((a) => a.ms)),
    statuses: await statusCounts(
      s.systemDb,
      arrivals.map((a) => a.id),
    ),
    ...refusals(all),
    inFlight: parked.ids.length,
    endedWithinSeconds: (performance.now() - t) / 1000,
  };
}

/**
 * The worker as docker-compose.yml runs it: `npm run build`'s output, a smaller young generation, two
 * malloc arenas (README: Performance).
 */
export const DEPLOYED_WORKER = {
  entry: 'dist/worker/main.js',
  nodeFlags: ['--max-semi-space-size=4'],
  env: { MALLOC_ARENA_MAX: '2' },
};

/**
 * A fresh worker process (first poll after 60 s, so that parked generations wait quietly, as they
 * would for a webhook) with `count` generations in flight: its RSS once all have reached the provider.
 * `deployed`: started as DEPLOYED_WORKER, else from the sources under tsx (`npm run worker`).
 */
export async function workerMemory(s: BenchStack, parked: Parked, count: number, deployed: boolean) {
  await parked.terminate();
  if (deployed && !existsSync(path.join(PROJECT_ROOT, DEPLOYED_WORKER.entry))) {
    throw new Error(`${DEPLOYED_WORKER.entry} is missing: run \`npm run build\` first`);
  }
  const worker = await s.restartWorker(
    { PROVIDER_POLL_INITIAL_MS: '60000', ...(deployed ? DEPLOYED_WORKER.env : {}) },
    deployed ? DEPLOYED_WORKER : {},
  );
  const idle = await worker.memory();
  const t = performance.now();
  const before = new Set((await providerJobs(s.providerUrl)).keys());
  parked.refused = 0;
  await parked.topUp(count);
  // Admitted is not yet at the provider: wait until every one has been submitted there.
  for (;;) {
    const jobs = await providerJobs(s.providerUrl);
    const arrived = [...jobs.keys()].filter((k) => !before.has(k)).length;
    if (arrived >= parked.ids.length) break;
    if (performance.now() - t > 300_000) throw new Error(`only ${arrived} of ${count} reached the provider`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const fillSeconds = (performance.now() - t) / 1000;
  await new Promise((r) => setTimeout(r, 2000));
  const loaded = await worker.memory();
  const inFlight = parked.ids.length;
  await parked.terminate();
  return {
    idleRssMb: idle.rssMb,
    rssMb: loaded.rssMb,
    peakMb: loaded.peakMb,
    fillSeconds,
    inFlight,
    refused: parked.refused,
  };
}
