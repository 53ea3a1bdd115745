import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities';
import type { ReconcileReport } from '../../activities/reconciliation';
import { findModel } from '../../lib/catalog/models';
import { withSystemTx } from '../../lib/db/pool';
import { checkLedgerReport } from '../../lib/ledger/check';
import { freePort } from '../../lib/net/free-port';
import { createProviders, createStorage } from '../../lib/wiring/from-config';
import { activityDeps } from '../../worker/create-worker';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from '../../worker/workflow-state';
import { generationWorkflowId, type GenerationInput } from '../../workflows/definitions';
import { startFakeFal, type FakeFal } from '../fakes/fal-server';
import { createUser, startApi, systemDb, waitFor, type ApiHarness, type Harness } from '../support/context';
import { settled, startListeningHarness, submit, type User } from '../support/provider-e2e';
import { startWorkerProcess } from '../support/worker-process';

// Every generation gets its own prompt: the fake keys its faults and jobs by prompt.
let n = 0;
const prompt = (faults = '') => `${faults} a lighthouse ${++n} ${randomUUID()}`.trim();

const falEnv = (fal: FakeFal, cap: number) => ({
  VELRO_PROVIDER: 'fal',
  FAL_KEY: 'test',
  FAL_QUEUE_URL: fal.url,
  FAL_JWKS_URL: fal.jwksUrl,
  FAL_MAX_CONCURRENCY: String(cap),
  PROVIDER_POLL_INITIAL_MS: '200',
  PROVIDER_HTTP_TIMEOUT_MS: '1000',
});

interface SlotRow {
  generation_id: string;
  granted_at: Date | null;
  released_at: Date | null;
  release_reason: string | null;
}

async function slotRows(ids: string[]): Promise<SlotRow[]> {
  const { rows } = await withSystemTx(systemDb(), (tx) =>
    tx.query<SlotRow>(
      `SELECT generation_id, granted_at, released_at, release_reason FROM capacity_requests
       WHERE generation_id = ANY($1)`,
      [ids],
    ),
  );
  return rows;
}

const slotOf = async (id: string) => (await slotRows([id]))[0];
const isWaiting = (r?: SlotRow) => !!r && r.granted_at === null && r.released_at === null;
const isHolding = (r?: SlotRow) => !!r && r.granted_at !== null && r.released_at === null;

/** The kinds of transfer of each generation, sorted: ['commit', 'reserve'] or ['release', 'reserve']. */
async function transferKinds(ids: string[]): Promise<Map<string, string[]>> {
  const { rows } = await withSystemTx(systemDb(), (tx) =>
    tx.query<{ generation_id: string; kinds: string[] }>(
      `SELECT generation_id, array_agg(kind ORDER BY kind) AS kinds FROM credit_transfers
       WHERE generation_id = ANY($1) GROUP BY generation_id`,
      [ids],
    ),
  );
  return new Map(rows.map((r) => [r.generation_id, r.kinds]));
}

/** Succeeded ones charged exactly once, the others refunded exactly once. */
async function expectSettledOnce(gens: { id: string; status: string; credits: { state: string } }[]) {
  const kinds = await transferKinds(gens.map((g) => g.id));
  for (const g of gens) {
    if (g.status === 'succeeded') {
      expect(kinds.get(g.id), g.id).toEqual(['commit', 'reserve']);
      expect(g.credits.state).toBe('charged');
    } else {
      expect(kinds.get(g.id), g.id).toEqual(['release', 'reserve']);
      expect(g.credits.state).toBe('refunded');
    }
  }
}

/** No slot of these generations is held or waited for, and the ledger check agrees. */
async function expectNoSlotLeft(ids: string[]) {
  const rows = await slotRows(ids);
  expect(rows.filter((r) => r.released_at === null)).toEqual([]);
  const report = await checkLedgerReport(systemDb());
  expect(
    report.problems.filter(
      (p) => p.kind === 'slot_held_by_ended_generation' && ids.includes(p.generationId!),
    ),
  ).toEqual([]);
}

/** The API alone, listening (fal's webhooks reach it), with no worker of its own. */
async function startListeningApi(env: Record<string, string>): Promise<ApiHarness> {
  const port = await freePort();
  const api = await startApi({ VELRO_PUBLIC_URL: `http://127.0.0.1:${port}`, ...env });
  await api.app.listen({ port, host: '127.0.0.1' });
  return api;
}

/** Two worker processes on the API's task queue, sharing its pools (its scope). */
async function startTwoWorkers(api: ApiHarness, env: Record<string, string>): Promise<ChildProcess[]> {
  const workers = [0, 1].map(() =>
    startWorkerProcess(api, { ...env, VELRO_PUBLIC_URL: api.config.VELRO_PUBLIC_URL! }),
  );
  await Promise.all(workers.map((w) => w.ready));
  return workers.map((w) => w.child);
}

async function submitMany(api: ApiHarness, user: User, count: number): Promise<string[]> {
  const answers = await Promise.all(
    Array.from({ length: count }, () =>
      api.app.inject({
        method: 'POST',
        url: '/v1/generations',
        headers: user.auth,
        payload: { model: 'flux-pro-v1.1-ultra', input: { prompt: prompt(), aspect_ratio: '1:1' } },
      }),
    ),
  );
  return answers.map((a) => {
    expect(a.statusCode, a.body).toBe(202);
    return a.json().id as string;
  });
}

async function allEnded(api: ApiHarness, user: User, ids: string[], timeoutMs: number) {
  return waitFor(
    async () => {
      const list = await api.app.inject({ url: `/v1/generations?limit=100`, headers: user.auth });
      return list.json().data as { id: string; status: string; credits: { state: string } }[];
    },
    (gens) =>
      gens.length === ids.length && gens.every((g) => ['succeeded', 'failed', 'canceled'].includes(g.status)),
    timeoutMs,
  );
}

/** The identities of the workers that ran each generation's submit to the provider. */
async function submitters(api: ApiHarness, ids: string[]): Promise<Set<string>> {
  const identities = new Set<string>();
  for (const id of ids) {
    const { events } = await api.temporal.workflow.getHandle(generationWorkflowId(id)).fetchHistory();
    const submits = new Set(
      (events ?? [])
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'submitToProvider')
        .map((e) => Number(e.eventId)),
    );
    for (const e of events ?? []) {
      const started = e.activityTaskStartedEventAttributes;
      if (started && submits.has(Number(started.scheduledEventId)) && started.identity)
        identities.add(started.identity);
    }
  }
  return identities;
}

describe('one provider cap across two worker processes', () => {
  const CAP = 3;
  let fal: FakeFal | undefined;
  let api: ApiHarness | undefined;
  let workers: ChildProcess[] = [];
  afterEach(async () => {
    for (const w of workers) w.kill('SIGKILL');
    workers = [];
    await api?.stop();
    await fal?.close();
    api = undefined;
    fal = undefined;
  });

  it('keeps at most FAL_MAX_CONCURRENCY jobs at fal, uses all of them, and charges each once', async () => {
    fal = await startFakeFal({ runMs: 1000 });
    const env = falEnv(fal, CAP);
    api = await startListeningApi(env);
    workers = await startTwoWorkers(api, env);
    const user = await createUser(api.db, 15 * 50);

    const ids = await submitMany(api, user, 15);
    const final = await allEnded(api, user, ids, 90_000);

    expect(fal.peakInFlight).toBeLessThanOrEqual(CAP);
    expect(fal.peakInFlight).toBe(CAP);
    expect(fal.jobs.size).toBe(15);
    expect(final.every((g) => g.status === 'succeeded')).toBe(true);
    await expectSettledOnce(final);
    await expectNoSlotLeft(ids);
    // Both processes took part: each ran some of the submits (identity `<pid>@<host>`).
    const pids = [...(await submitters(api, ids))].map((identity) => Number(identity.split('@')[0]));
    expect(new Set(pids)).toEqual(new Set(workers.map((w) => w.pid)));
  });

  it('frees the slots of a worker killed mid-flight: every generation ends, settled once, no slot left', async () => {
    // Jobs run 3 s at fal, so the kill finds some of them in flight and others waiting.
    fal = await startFakeFal({ runMs: 3000 });
    const env = { ...falEnv(fal, CAP), CAPACITY_RECHECK_MS: '2000' };
    api = await startListeningApi(env);
    workers = await startTwoWorkers(api, env);
    const user = await createUser(api.db, 12 * 50);

    const ids = await submitMany(api, user, 12);
    const atKill = await waitFor(
      async () => ({ inFlight: fal!.inFlight(), rows: await slotRows(ids) }),
      (s) => s.inFlight > 0 && s.rows.filter(isHolding).length > 0 && s.rows.filter(isWaiting).length > 0,
      30_000,
    );
    const [victim] = workers;
    victim!.kill('SIGKILL');
    await new Promise((r) => victim!.once('exit', r));
    // Mid-flight: jobs at fal and generations queued behind them when the worker died.
    expect(atKill.inFlight).toBeGreaterThan(0);
    expect(atKill.rows.filter(isWaiting).length).toBeGreaterThan(0);

    const final = await allEnded(api, user, ids, 150_000);
    expect(fal.peakInFlight).toBeLessThanOrEqual(CAP);
    await expectSettledOnce(final);
    await expectNoSlotLeft(ids);
    const succeeded = final.filter((g) => g.status === 'succeeded').length;
    const balance = (await api.app.inject({ url: '/v1/credits', headers: user.auth })).json();
    expect(balance).toEqual({ available: (12 - succeeded) * 50, reserved: 0, spent: succeeded * 50 });
  });
});

describe('a slot comes back on every way a generation ends (FAL_MAX_CONCURRENCY=1)', () => {
  let fal: FakeFal;
  let h: Harness;
  let user: User;
  beforeAll(async () => {
    fal = await startFakeFal();
    ({ h } = await startListeningHarness(falEnv(fal, 1)));
    user = await createUser(h.db, 100_000);
  });
  afterAll(async () => {
    await h?.stop();
    await fal?.close();
  });

  const gen = (p: string) => submit(h, user, { prompt: p, aspect_ratio: '1:1' }).then((g) => g.id);
  const until = (id: string, done: (r?: SlotRow) => boolean) => waitFor(() => slotOf(id), done, 20_000);
  const cancel = (id: string) =>
    h.app.inject({ method: 'POST', url: `/v1/generations/${id}/cancel`, headers: user.auth });
  const falJob = (p: string) =>
    waitFor(
      async () => fal.jobFor(p),
      (j) => j !== undefined,
      20_000,
    );

  /** A `#slow` generation x (prompt p) holding the pool's one slot at fal, and w waiting behind it. */
  async function holderAndWaiter(): Promise<{ p: string; x: string; w: string }> {
    const p = prompt('#slow');
    const x = await gen(p);
    await until(x, isHolding);
    await falJob(p);
    const w = await gen(prompt());
    await until(w, isWaiting);
    return { p, x, w };
  }

  /** A `#slow` generation holding the pool's one slot, submitted at fal; ended by a cancel. */
  async function blocker(): Promise<{ id: string; release: () => Promise<void> }> {
    const p = prompt('#slow');
    const id = await gen(p);
    await until(id, isHolding);
    await falJob(p);
    return {
      id,
      async release() {
        expect((await cancel(id)).statusCode).toBe(202);
        expect((await settled(h, user, id)).status).toBe('canceled');
      },
    };
  }

  /** `waiter` got the slot `ended` gave back (granted only after that release), then succeeded. */
  async function expectHandedOver(ended: string, waiter: string) {
    const done = await settled(h, user, waiter);
    expect(done.status).toBe('succeeded');
    const [from, to] = [await slotOf(ended), await slotOf(waiter)];
    expect(from!.released_at).not.toBeNull();
    expect(to!.granted_at!.getTime()).toBeGreaterThanOrEqual(from!.released_at!.getTime());
    expect(to!.release_reason).toBe('the provider finished');
    await expectNoSlotLeft([ended, waiter]);
  }

  it('success: released once the provider finished, and the next in line gets it', async () => {
    const b = await blocker();
    const x = await gen(prompt());
    await until(x, isWaiting);
    const w = await gen(prompt());
    await until(w, isWaiting);

    await b.release();
    expect((await settled(h, user, x)).status).toBe('succeeded');
    expect((await slotOf(x))!.release_reason).toBe('the provider finished');
    await expectHandedOver(x, w);
    await expectSettledOnce([await settled(h, user, x)]);
  });

  it('provider failure: released with the failure, refunded, and the next in line gets it', async () => {
    const b = await blocker();
    const x = await gen(prompt('#completed-error'));
    await until(x, isWaiting);
    const w = await gen(prompt());
    await until(w, isWaiting);

    await b.release();
    const failed = await settled(h, user, x);
    expect(failed.status).toBe('failed');
    expect((await slotOf(x))!.release_reason).toBe(`failed: ${failed.error.code}`);
    await expectSettledOnce([failed]);
    await expectHandedOver(x, w);
  });

  it('provider timeout: released when the deadline passes, cancelled at fal, and the next in line gets it', async () => {
    // No model's deadline is short: start the workflow as the API does, with a 2 s deadline.
    const b = await blocker();
    const model = findModel('flux-pro-v1.1-ultra')!;
    const p = prompt('#slow');
    const x = randomUUID();
    const input: GenerationInput = {
      generationId: x,
      userId: user.userId,
      teamId: null,
      projectId: null,
      model: model.id,
      input: { prompt: p, aspect_ratio: '1:1' },
      credits: model.credits,
      provider: 'fal',
      deadlineSeconds: 2,
      webhookUrl: null,
    };
    await h.temporal.workflow.start('GenerationWorkflow', {
      workflowId: generationWorkflowId(x),
      taskQueue: h.config.TEMPORAL_TASK_QUEUE,
      args: [input],
    });
    await until(x, isWaiting);
    const w = await gen(prompt());
    await until(w, isWaiting);

    await b.release();
    const timedOut = await settled(h, user, x);
    expect(timedOut).toMatchObject({ status: 'failed', error: { code: 'provider_timeout' } });
    expect((await slotOf(x))!.release_reason).toBe('failed: provider_timeout');
    expect(fal.jobFor(p)!.canceled).toBe(true);
    await expectSettledOnce([timedOut]);
    await expectHandedOver(x, w);
  });

  it('cancel while running: released as canceled, cancelled at fal, and the next in line gets it', async () => {
    const { p, x, w } = await holderAndWaiter();

    expect((await cancel(x)).statusCode).toBe(202);
    const canceled = await settled(h, user, x);
    expect(canceled.status).toBe('canceled');
    expect((await slotOf(x))!.release_reason).toBe('canceled');
    expect(fal.jobFor(p)!.canceled).toBe(true);
    await expectSettledOnce([canceled]);
    await expectHandedOver(x, w);
  });

  it('cancel while waiting: leaves the queue, never reaches fal, and the slot goes to the one behind it', async () => {
    const b = await blocker();
    const p = prompt();
    const x = await gen(p);
    await until(x, isWaiting);
    const w = await gen(prompt());
    await until(w, isWaiting);

    expect((await cancel(x)).statusCode).toBe(202);
    const canceled = await settled(h, user, x);
    expect(canceled).toMatchObject({ status: 'canceled', credits: { state: 'refunded' } });
    expect(await slotOf(x)).toMatchObject({ granted_at: null, release_reason: 'canceled' });
    expect((await slotOf(x))!.released_at).not.toBeNull();
    await expectSettledOnce([canceled]);

    // The blocker's slot passes over the canceled one to the next in line.
    await b.release();
    await expectHandedOver(b.id, w);
    expect(fal.jobFor(p)).toBeUndefined();
  });

  /** The ledger reconciler's activity, run here, with this harness's pools and Temporal. */
  function reconcile() {
    const storage = createStorage(h.config);
    const deps = activityDeps(h.config, {
      db: h.db,
      systemDb: systemDb(),
      storage,
      providers: createProviders(h.config, storage),
      workflowState: workflowStateOf(h.temporal),
      stoppedGenerations: stoppedGenerationsOf(h.temporal),
      signalGranted: signalCapacityGrantedOf(h.temporal),
    });
    return new MockActivityEnvironment().run(
      createActivities(deps).reconcileLedger,
    ) as Promise<ReconcileReport>;
  }

  it("an operator's terminate: the slot stays held until the reconciler frees it, then the next starts", async () => {
    const { p, x, w } = await holderAndWaiter();

    const handle = h.temporal.workflow.getHandle(generationWorkflowId(x));
    await handle.terminate('operator test');
    expect((await handle.describe()).status.name).toBe('TERMINATED');
    // Nothing of the workflow ran: its slot is still held, and the next one still waits.
    expect(isHolding(await slotOf(x))).toBe(true);
    expect(isWaiting(await slotOf(w))).toBe(true);

    // The visibility pass may not list the terminate at once: run until it has freed the slot.
    let freedSlots = 0;
    await waitFor(
      async () => {
        freedSlots += (await reconcile()).freedSlots;
        return slotOf(x);
      },
      (r) => r?.released_at !== null,
      20_000,
    );
    expect(freedSlots).toBeGreaterThanOrEqual(1);
    expect((await slotOf(x))!.release_reason).toBe('reconciler: the generation had ended');
    const terminated = await settled(h, user, x);
    expect(terminated).toMatchObject({ status: 'failed', error: { code: 'terminated' } });
    await expectSettledOnce([terminated]);
    await expectHandedOver(x, w);
    // Its job was cancelled at the provider before the slot went on: the cap held at the provider too.
    expect((await falJob(p))!.canceled).toBe(true);
    expect(fal.peakInFlight).toBeLessThanOrEqual(1);
  });

  /** Resets the generation's workflow to its first workflow task; the new run's id. */
  async function resetToStart(id: string): Promise<string> {
    const handle = h.temporal.workflow.getHandle(generationWorkflowId(id));
    const { runId } = await handle.describe();
    const { events } = await handle.fetchHistory();
    const firstTask = events!.find((e) => e.workflowTaskCompletedEventAttributes)!;
    const { runId: newRunId } = await h.temporal.workflowService.resetWorkflowExecution({
      namespace: h.config.TEMPORAL_NAMESPACE,
      workflowExecution: { workflowId: generationWorkflowId(id), runId },
      workflowTaskFinishEventId: firstTask.eventId,
      requestId: randomUUID(),
      reason: 'operator test',
    });
    return newRunId!;
  }

  it('a reset while waiting: the new run waits on, gets the slot in turn, ends normally and releases', async () => {
    const b = await blocker();
    const x = await gen(prompt());
    await until(x, isWaiting);
    const w = await gen(prompt());
    await until(w, isWaiting);

    const newRun = await resetToStart(x);
    expect((await h.temporal.workflow.getHandle(generationWorkflowId(x)).describe()).runId).toBe(newRun);
    expect(isWaiting(await slotOf(x))).toBe(true);

    await b.release();
    const done = await settled(h, user, x);
    expect(done.status).toBe('succeeded');
    expect((await slotOf(x))!.release_reason).toBe('the provider finished');
    await expectSettledOnce([done]);
    await expectHandedOver(x, w);
  });

  it('a reset while holding the slot: the new run keeps it (no queueing behind others), ends and releases', async () => {
    const { p, x, w } = await holderAndWaiter();

    const newRun = await resetToStart(x);
    // The new run replays admission, asks again, is told it still holds the slot and goes on to poll
    // its job at fal (submit finds the request it recorded: no second job), while w still waits.
    await waitFor(
      async () => {
        const { events } = await h.temporal.workflow
          .getHandle(generationWorkflowId(x), newRun)
          .fetchHistory();
        return (events ?? []).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
      },
      (names) => names.includes('checkProvider'),
      20_000,
    );
    expect([...fal.jobs.values()].filter((j) => j.input.prompt === p)).toHaveLength(1);
    expect(isHolding(await slotOf(x))).toBe(true);
    expect(isWaiting(await slotOf(w))).toBe(true);

    expect((await cancel(x)).statusCode).toBe(202);
    const canceled = await settled(h, user, x);
    expect(canceled.status).toBe('canceled');
    expect((await slotOf(x))!.release_reason).toBe('canceled');
    expect(fal.jobFor(p)!.canceled).toBe(true);
    await expectSettledOnce([canceled]);
    await expectHandedOver(x, w);
  });
});
