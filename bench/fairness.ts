// Fairness under a provider cap (issue #15): tenant A floods fal with 300 generations, tenant B
// then asks for 5. How long B waits against one slot turnover, whether the cap ever gives, and
// what the cap costs in throughput against the same run without caps — all read from the fake
// provider's own records (test/fakes/fal-server.ts), on one clock: this process's.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { buildApp } from '../api/app';
import { generateApiKey } from '../lib/auth/api-keys';
import { loadConfig } from '../lib/config';
import { withSystemTx, type SystemDb } from '../lib/db/pool';
import { startStack, type Stack } from '../lib/dev/embedded-stack';
import * as ledger from '../lib/ledger/ledger';
import { freePort } from '../lib/net/free-port';
import { createDb, createProviders, createStorage, createSystemDb } from '../lib/wiring/from-config';
import { startFakeFal, type FalJob } from '../test/fakes/fal-server';
import { buildWorkflowBundle } from '../worker/build-bundle';
import { activityDeps, createWorker } from '../worker/create-worker';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from '../worker/workflow-state';
import type { Bench } from './run';

const CAP = 8;
/** Far above anything this run can reach: the "without caps" phase. */
const NO_CAP = 10_000;
/** fal's fixed time per job: queued, then running. 8 slots of 2 s do 4 jobs/s, below admission's ~10/s. */
const QUEUE_MS = 20;
const RUN_MS = 2000;
const JOB_MS = QUEUE_MS + RUN_MS;
const A_COUNT = 300;
const B_COUNT = 5;
const RESULTS = path.join(os.tmpdir(), 'velro-bench', 'fairness.json');

type Tenant = 'A' | 'B';

interface Submitted {
  tenant: Tenant;
  prompt: string;
  id: string;
  /** When the 202 came back (ms, this process's clock). */
  answeredAt: number;
}

interface PhaseRun {
  cap: number;
  submitted: Submitted[];
  /** The fake's jobs in submission order, with whose they are. */
  jobs: (FalJob & { tenant: Tenant; generationId: string })[];
  peakInFlight: number;
  firstSentAt: number;
  allEndedAt: number;
  /** Each generation's capacity request: when it queued, was granted, released (ms, the DB's clock). */
  requests: Map<string, { enqueuedAt: number; grantedAt: number | null; releasedAt: number | null }>;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
};
const ms = (n: number) => `${Math.round(n)} ms`;
const ratio = (n: number) => n.toFixed(2);

const bench: Bench = {
  name: 'fairness',
  description: `tenant A submits ${A_COUNT}, then B ${B_COUNT}, fal capped at ${CAP} (${RUN_MS} ms jobs): B's wait vs one slot turnover, cap excess, throughput vs no caps`,
  async run({ clients, log }) {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-bench-'));
    await fs.chmod(dataDir, 0o755);
    const stack = await startStack({ dataDir, uiPort: false, log: () => {} });
    try {
      const bundlePath = path.join(dataDir, 'workflow-bundle.js');
      await buildWorkflowBundle(bundlePath, new DefaultLogger('ERROR'));
      log(`capped phase: fal cap ${CAP}, per-account image cap ${NO_CAP} (the provider's cap binds)`);
      const capped = await runPhase(stack, { dataDir, bundlePath, cap: CAP, clients });
      log(`uncapped phase: fal cap and per-account image cap ${NO_CAP}, a fresh task queue (fresh pools)`);
      const uncapped = await runPhase(stack, { dataDir, bundlePath, cap: NO_CAP, clients });
      const figures = report(capped, uncapped, log);
      await fs.mkdir(path.dirname(RESULTS), { recursive: true });
      await fs.writeFile(RESULTS, JSON.stringify(figures, null, 2) + '\n');
      log(`figures written to ${RESULTS}`);
      if (figures.capExcess > 0) throw new Error(`fal had ${figures.capExcess} jobs in flight above its cap`);
    } finally {
      await stack.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  },
};

/** One run of the workload on its own fake fal, task queue (so its own pools), API and worker. */
async function runPhase(
  stack: Stack,
  {
    dataDir,
    bundlePath,
    cap,
    clients,
  }: { dataDir: string; bundlePath: string; cap: number; clients: number },
): Promise<PhaseRun> {
  const fal = await startFakeFal({ runMs: RUN_MS, queueMs: QUEUE_MS });
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    DATABASE_URL: stack.databaseUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_TASK_QUEUE: `bench-fairness-${randomUUID()}`,
    VELRO_DATA_DIR: dataDir,
    PORT: String(port),
    // fal's completion webhooks come here, so a workflow hears of its job's end at once.
    VELRO_PUBLIC_URL: apiUrl,
    LOG_LEVEL: 'silent',
    DATABASE_POOL_MAX: '30',
    ADMISSION_TIMEOUT_MS: '120000',
    VELRO_PROVIDER: 'fal',
    FAL_KEY: 'test',
    FAL_QUEUE_URL: fal.url,
    FAL_JWKS_URL: fal.jwksUrl,
    PROVIDER_OUTPUT_ALLOW_LOOPBACK: 'true',
    PROVIDER_POLL_INITIAL_MS: '500',
    FAL_MAX_CONCURRENCY: String(cap),
    CAPACITY_ACCOUNT_MAX_IMAGE: String(NO_CAP),
  });
  const db = createDb(config, stack.appDatabaseUrl, 'velro-bench');
  const systemDb = createSystemDb(config, stack.systemDatabaseUrl, 'velro-bench-system');
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const temporal = new Client({ connection });
  const storage = createStorage(config);
  const app = await buildApp({ config, db, temporal, storage, assetSigningKey: Buffer.alloc(32, 1) });
  await app.listen({ port, host: '127.0.0.1' });
  const native = await NativeConnection.connect({ address: stack.temporalAddress });
  const worker = await createWorker({
    config,
    connection: native,
    workflowBundlePath: bundlePath,
    deps: activityDeps(config, {
      db,
      systemDb,
      storage,
      providers: createProviders(config, storage),
      workflowState: workflowStateOf(temporal),
      stoppedGenerations: stoppedGenerationsOf(temporal),
      signalGranted: signalCapacityGrantedOf(temporal),
    }),
  });
  const running = worker.run();

  try {
    const keys = { A: await createTenant(systemDb), B: await createTenant(systemDb) };
    const submit = async (tenant: Tenant, i: number): Promise<Submitted> => {
      const prompt = `fairness ${tenant} ${i}`;
      const r = await fetch(`${apiUrl}/v1/generations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${keys[tenant]}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'flux-pro-v1.1-ultra', input: { prompt, aspect_ratio: '1:1' } }),
      });
      if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${await r.text()}`);
      const { id } = (await r.json()) as { id: string };
      return { tenant, prompt, id, answeredAt: Date.now() };
    };

    const firstSentAt = Date.now();
    const submitted = await pooled(A_COUNT, clients, (i) => submit('A', i));
    submitted.push(...(await Promise.all(Array.from({ length: B_COUNT }, (_, i) => submit('B', i)))));
    const ids = submitted.map((s) => s.id);
    await waitAllEnded(systemDb, ids, 600_000);
    const allEndedAt = Date.now();
    await expectAllSucceeded(systemDb, ids);

    const byPrompt = new Map(submitted.map((s) => [s.prompt, s]));
    const jobs = [...fal.jobs.values()]
      .sort((a, b) => a.submittedAt - b.submittedAt)
      .map((job) => {
        const s = byPrompt.get(String(job.input.prompt));
        if (!s) throw new Error(`fal got a job Velro did not submit: ${String(job.input.prompt)}`);
        return { ...job, tenant: s.tenant, generationId: s.id };
      });
    if (jobs.length !== ids.length)
      throw new Error(`fal got ${jobs.length} jobs for ${ids.length} generations`);
    return {
      cap,
      submitted,
      jobs,
      peakInFlight: fal.peakInFlight,
      firstSentAt,
      allEndedAt,
      requests: await capacityRequests(systemDb, ids),
    };
  } finally {
    worker.shutdown();
    await running;
    await app.close();
    await native.close();
    await connection.close();
    await db.end();
    await systemDb.end();
    await fal.close();
  }
}

/** The figures, printed as a table; the same as JSON. */
function report(capped: PhaseRun, uncapped: PhaseRun, log: (line: string) => void) {
  const { jobs } = capped;
  // A slot's turnover, measured while the queue is full: job j could start only once the job `cap`
  // places before it ended at the fake (the fake ends jobs in their submission order: all take
  // JOB_MS), so s[j] − s[j−cap] is the fake's job time plus Velro's own turnaround (webhook, release,
  // grant, signal, submit). Counted only for jobs already waiting for a slot when that job ended.
  const turnovers: number[] = [];
  const fullQueue: number[] = [];
  // Its two halves (DB and process clocks: one machine): the job's end at the fake to its slot's
  // release (webhook, the workflow's poll and result), and a waiter's grant to its submit (signal,
  // workflow task, submit activity).
  const endToRelease: number[] = [];
  const grantToSubmit: number[] = [];
  // While A's submits still arrive the worker also runs their admissions: the turnaround then and after.
  const lastAAnswer = Math.max(...capped.submitted.filter((s) => s.tenant === 'A').map((s) => s.answeredAt));
  const during: number[] = [];
  const after: number[] = [];
  for (let j = CAP; j < jobs.length; j++) {
    const job = jobs[j]!;
    const freedAt = jobs[j - CAP]!.submittedAt + JOB_MS;
    const request = capped.requests.get(job.generationId)!;
    if (request.enqueuedAt >= freedAt) continue;
    const t = job.submittedAt - jobs[j - CAP]!.submittedAt;
    turnovers.push(t);
    if (job.submittedAt <= lastAAnswer) during.push(t - JOB_MS);
    else after.push(t - JOB_MS);
    fullQueue.push(job.submittedAt);
    grantToSubmit.push(job.submittedAt - request.grantedAt!);
  }
  for (const job of jobs) {
    endToRelease.push(capped.requests.get(job.generationId)!.releasedAt! - (job.submittedAt + JOB_MS));
  }
  const turnover = percentile(turnovers, 0.5);
  const turnaround = turnovers.map((t) => t - JOB_MS);
  const p50p95 = (v: number[]) => (v.length ? `${ms(percentile(v, 0.5))} / ${ms(percentile(v, 0.95))}` : '-');

  const answered = new Map(capped.submitted.map((s) => [s.id, s.answeredAt]));
  const bJobs = jobs.filter((j) => j.tenant === 'B');
  const bWaits = bJobs.map((j) => j.submittedAt - answered.get(j.generationId)!);
  const bToRequest = capped.submitted
    .filter((s) => s.tenant === 'B')
    .map((s) => capped.requests.get(s.id)!.enqueuedAt - s.answeredAt);
  const bArrival = Math.min(...capped.submitted.filter((s) => s.tenant === 'B').map((s) => s.answeredAt));
  const bFirstStart = Math.min(...bJobs.map((j) => j.submittedAt));
  const bLastStart = Math.max(...bJobs.map((j) => j.submittedAt));
  const aJobsIn = (from: number, to: number) =>
    jobs.filter((j) => j.tenant === 'A' && j.submittedAt > from && j.submittedAt < to).length;

  // Grants in the DB's order from B's first request on: who got each slot.
  const bEnqueued = Math.min(...bJobs.map((j) => capped.requests.get(j.generationId)!.enqueuedAt));
  const tenantOf = new Map(capped.submitted.map((s) => [s.id, s.tenant]));
  const grantOrder = [...capped.requests.entries()]
    .filter(([, r]) => r.grantedAt !== null && r.grantedAt >= bEnqueued)
    .sort(([, a], [, b]) => a.grantedAt! - b.grantedAt!)
    .slice(0, 2 * B_COUNT + 2)
    .map(([id]) => tenantOf.get(id))
    .join(' ');

  const perSecond = (run: PhaseRun) => run.submitted.length / ((run.allEndedAt - run.firstSentAt) / 1000);
  const fullQueueRate = (fullQueue.length - 1) / ((fullQueue.at(-1)! - fullQueue[0]!) / 1000);

  const figures = {
    cap: CAP,
    jobMs: JOB_MS,
    generations: { a: A_COUNT, b: B_COUNT },
    turnover: {
      how: 'median over capped-phase jobs j waiting when their slot freed of fal.submittedAt[j] - fal.submittedAt[j - cap]',
      samples: turnovers.length,
      p50Ms: turnover,
      p95Ms: percentile(turnovers, 0.95),
      velroTurnaroundP50Ms: percentile(turnaround, 0.5),
      velroTurnaroundP95Ms: percentile(turnaround, 0.95),
      endToReleaseP50Ms: percentile(endToRelease, 0.5),
      endToReleaseP95Ms: percentile(endToRelease, 0.95),
      grantToSubmitP50Ms: percentile(grantToSubmit, 0.5),
      grantToSubmitP95Ms: percentile(grantToSubmit, 0.95),
      turnaroundWhileASubmitsP50Ms: during.length ? percentile(during, 0.5) : null,
      turnaroundAfterASubmitsP50Ms: after.length ? percentile(after, 0.5) : null,
      samplesWhileASubmits: during.length,
    },
    bWait: {
      how: "B's 202 answer to its job's submit at the fake",
      msEach: bWaits,
      p50Ms: percentile(bWaits, 0.5),
      maxMs: Math.max(...bWaits),
      p50OverTurnover: percentile(bWaits, 0.5) / turnover,
      maxOverTurnover: Math.max(...bWaits) / turnover,
    },
    bAnswerToCapacityRequestMs: bToRequest,
    aJobsBetweenBArrivalAndFirstStart: aJobsIn(bArrival, bFirstStart),
    aJobsBetweenBArrivalAndLastStart: aJobsIn(bArrival, bLastStart),
    grantOrderFromB: grantOrder,
    peakInFlight: capped.peakInFlight,
    capExcess: Math.max(0, capped.peakInFlight - CAP),
    throughput: {
      how: 'generations / (first submit sent to last generation ended)',
      cappedPerSecond: perSecond(capped),
      uncappedPerSecond: perSecond(uncapped),
      cappedOverUncapped: perSecond(capped) / perSecond(uncapped),
      fullQueueJobsPerSecond: fullQueueRate,
      fullQueueIdealPerSecond: CAP / (JOB_MS / 1000),
      uncappedPeakInFlight: uncapped.peakInFlight,
    },
  };

  const t = figures.turnover;
  log('| figure | value |');
  log('| --- | --- |');
  log(`| fal job time (queue ${QUEUE_MS} + run ${RUN_MS} ms), cap | ${ms(JOB_MS)}, ${CAP} |`);
  log(
    `| slot turnover p50 / p95: s[j] − s[j−${CAP}] at the fake, jobs waiting when the slot freed (n=${t.samples}) | ${ms(t.p50Ms)} / ${ms(t.p95Ms)} |`,
  );
  log(
    `| Velro's turnaround p50 / p95 (that − job time: webhook, release, grant, signal, submit) | ${ms(t.velroTurnaroundP50Ms)} / ${ms(t.velroTurnaroundP95Ms)} |`,
  );
  log(
    `| of which: fal's end → slot released / grant → submit at fal, p50 / p95 | ${p50p95(endToRelease)}; ${p50p95(grantToSubmit)} |`,
  );
  log(
    `| turnaround p50 / p95 while A's submits still arrive (n=${during.length}) / after (n=${after.length}) | ${p50p95(during)}; ${p50p95(after)} |`,
  );
  log(`| B's waits, 202 → submit at fal, in fal's order | ${bWaits.map(ms).join(', ')} |`);
  log(`| of which B's 202 → its capacity request queued (DB clock) | ${bToRequest.map(ms).join(', ')} |`);
  log(`| B's wait p50 / max | ${ms(figures.bWait.p50Ms)} / ${ms(figures.bWait.maxMs)} |`);
  log(
    `| B's wait p50 / turnover, max / turnover (ideal: ≤ 1, and ≈ 9/8 for the max: turns alternate B A B…, so B's 5th is the 9th grant) | ${ratio(figures.bWait.p50OverTurnover)}, ${ratio(figures.bWait.maxOverTurnover)} |`,
  );
  log(
    `| A's jobs submitted at fal between B's first 202 and B's first / last start | ${figures.aJobsBetweenBArrivalAndFirstStart} / ${figures.aJobsBetweenBArrivalAndLastStart} |`,
  );
  log(`| grants from B's first request on (DB order) | ${grantOrder} |`);
  log(
    `| fal's peak in flight, excess over the cap (must be 0) | ${capped.peakInFlight}, ${figures.capExcess} |`,
  );
  log(
    `| fal jobs/s while the queue was full (ideal ${CAP} / ${JOB_MS} ms) | ${fullQueueRate.toFixed(2)} (${(CAP / (JOB_MS / 1000)).toFixed(2)}) |`,
  );
  log(
    `| generations/s, first submit → last ended: capped / uncapped (peak in flight ${uncapped.peakInFlight}) | ${perSecond(capped).toFixed(2)} / ${perSecond(uncapped).toFixed(2)} |`,
  );
  log(`| capped / uncapped throughput | ${ratio(figures.throughput.cappedOverUncapped)} |`);
  return figures;
}

/** A user with credits for everything here, and its API key. */
async function createTenant(systemDb: SystemDb): Promise<string> {
  const key = generateApiKey();
  await withSystemTx(systemDb, async (tx) => {
    const { rows } = await tx.query<{ id: string }>('SELECT create_user($1, NULL) AS id', [
      `bench-${randomUUID()}@velro.local`,
    ]);
    await tx.query('SELECT create_api_key($1, $2, $3, $4)', [rows[0]!.id, 'bench', key.prefix, key.hash]);
    await ledger.grant(tx, { id: randomUUID(), userId: rows[0]!.id, amount: 1_000_000, reason: 'bench' });
  });
  return key.key;
}

/** fn(0..n-1) with at most `limit` running at once; results in index order. */
async function pooled<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(n);
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      results[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
  return results;
}

async function waitAllEnded(db: SystemDb, ids: string[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await withSystemTx(db, (tx) =>
      tx.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM generations WHERE id = ANY($1) AND completed_at IS NULL',
        [ids],
      ),
    );
    if (rows[0]!.n === 0) return;
    if (Date.now() > until) throw new Error(`${rows[0]!.n} generations still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function expectAllSucceeded(db: SystemDb, ids: string[]): Promise<void> {
  const { rows } = await withSystemTx(db, (tx) =>
    tx.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM generations WHERE id = ANY($1) GROUP BY status',
      [ids],
    ),
  );
  const failed = rows.filter((r) => r.status !== 'succeeded');
  if (failed.length) throw new Error(`not every generation succeeded: ${JSON.stringify(rows)}`);
}

async function capacityRequests(db: SystemDb, ids: string[]): Promise<PhaseRun['requests']> {
  const { rows } = await withSystemTx(db, (tx) =>
    tx.query<{
      generation_id: string;
      enqueued_ms: number;
      granted_ms: number | null;
      released_ms: number | null;
    }>(
      `SELECT generation_id, extract(epoch FROM enqueued_at)::float8 * 1000 AS enqueued_ms,
              extract(epoch FROM granted_at)::float8 * 1000 AS granted_ms,
              extract(epoch FROM released_at)::float8 * 1000 AS released_ms
       FROM capacity_requests WHERE generation_id = ANY($1)`,
      [ids],
    ),
  );
  return new Map(
    rows.map((r) => [
      r.generation_id,
      { enqueuedAt: r.enqueued_ms, grantedAt: r.granted_ms, releasedAt: r.released_ms },
    ]),
  );
}

export default bench;
