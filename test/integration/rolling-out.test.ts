import { randomUUID } from 'node:crypto';
import { Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withSystemTx } from '../../lib/db/pool';
import { createProviders, createStorage } from '../../lib/wiring/from-config';
import { describeDeployment, type DeploymentTarget } from '../../lib/temporal/worker-deployment';
import { activityDeps, createWorker } from '../../worker/create-worker';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from '../../worker/workflow-state';
import { generationWorkflowId } from '../../workflows/definitions';
import {
  createUser,
  startApi,
  submitGeneration,
  systemDb,
  testConfig,
  testDb,
  testStack,
  waitFor,
  type ApiHarness,
} from '../support/context';
import { runScript } from '../support/scripts';

const PER_BUILD = 3;
const PRICE = 50; // flux-pro-v1.1-ultra
const LATENCY = { LOCAL_PROVIDER_LATENCY_MS: '2500' };

interface BuildWorker {
  buildId: string;
  identity: string;
  stop(): Promise<void>;
}

interface Rollout {
  api: ApiHarness;
  deploymentName: string;
  target: DeploymentTarget;
  workers: BuildWorker[];
}

let rollout: Rollout | undefined;

beforeAll(() => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
});

afterEach(async () => {
  if (!rollout) return;
  for (const w of rollout.workers) await w.stop();
  await rollout.target.connection.close();
  await rollout.api.stop();
  rollout = undefined;
});

/** An API and a Worker Deployment of their own (own task queue, own deployment name). */
async function startRollout(): Promise<Rollout> {
  const api = await startApi(LATENCY);
  const connection = await Connection.connect({ address: testStack().temporalAddress });
  const deploymentName = `velro-test-${randomUUID().slice(0, 8)}`;
  rollout = {
    api,
    deploymentName,
    target: { connection, namespace: api.config.TEMPORAL_NAMESPACE, deploymentName },
    workers: [],
  };
  return rollout;
}

/** A worker of one build, on the real workflow bundle, as `npm run worker` with TEMPORAL_BUILD_ID. */
async function startBuild(r: Rollout, buildId: string): Promise<BuildWorker> {
  const config = testConfig({
    ...LATENCY,
    TEMPORAL_TASK_QUEUE: r.api.config.TEMPORAL_TASK_QUEUE,
    TEMPORAL_DEPLOYMENT_NAME: r.deploymentName,
    TEMPORAL_BUILD_ID: buildId,
  });
  const db = testDb(config);
  const storage = createStorage(config);
  const connection = await NativeConnection.connect({ address: testStack().temporalAddress });
  const identity = `build-${buildId}-${randomUUID().slice(0, 8)}`;
  const worker: Worker = await createWorker({
    config,
    connection,
    workflowBundlePath: testStack().workflowBundlePath,
    deps: activityDeps(config, {
      db,
      systemDb: systemDb(),
      storage,
      providers: createProviders(config, storage),
      workflowState: workflowStateOf(r.api.temporal),
      stoppedGenerations: stoppedGenerationsOf(r.api.temporal),
      signalGranted: signalCapacityGrantedOf(r.api.temporal),
    }),
    overrides: { identity },
  });
  const running = worker.run();
  let stopped: Promise<void> | undefined;
  const build: BuildWorker = {
    buildId,
    identity,
    stop: () =>
      (stopped ??= (async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
        await connection.close();
        await db.end();
      })()),
  };
  r.workers.push(build);
  // The server knows a build once one of its workers has polled; only then can it become current.
  await waitFor(
    () => describeDeployment(r.target).catch(() => undefined),
    (d) => d?.builds.some((b) => b.buildId === buildId) ?? false,
    15_000,
  );
  return build;
}

/** `npm run deploy -- <args>` against the test stack and this rollout's deployment. */
async function deploy(r: Rollout, ...args: string[]) {
  const result = await runScript('scripts/deploy.ts', args, {
    TEMPORAL_ADDRESS: testStack().temporalAddress,
    TEMPORAL_NAMESPACE: r.api.config.TEMPORAL_NAMESPACE,
    TEMPORAL_DEPLOYMENT_NAME: r.deploymentName,
  });
  expect(result, result.stderr).toMatchObject({ code: 0 });
  return result.stdout;
}

async function submit(r: Rollout, auth: Record<string, string>, label: string, n = PER_BUILD) {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      submitGeneration(r.api.app, auth, {
        model: 'flux-pro-v1.1-ultra',
        input: { prompt: `${label} ${i}`, aspect_ratio: '1:1' },
      }),
    ),
  );
}

/** Every worker identity that completed a workflow task or ran an activity of the generation. */
async function identitiesOf(r: Rollout, generationId: string): Promise<string[]> {
  const { events } = await r.api.temporal.workflow
    .getHandle(generationWorkflowId(generationId))
    .fetchHistory();
  const seen = new Set<string>();
  for (const e of events ?? []) {
    const identity =
      e.workflowTaskCompletedEventAttributes?.identity ?? e.activityTaskStartedEventAttributes?.identity;
    if (identity) seen.add(identity);
  }
  return [...seen];
}

async function statusesOf(r: Rollout, ids: string[]) {
  return Promise.all(
    ids.map(async (id) => {
      const { rows } = await withSystemTx(systemDb(), (tx) =>
        tx.query<{ status: string }>('SELECT status FROM generations WHERE id = $1', [id]),
      );
      return rows[0]?.status;
    }),
  );
}

const isDone = (s: string | undefined) => s === 'succeeded' || s === 'failed' || s === 'canceled';

/** Waits until the provider has the generations: each is past its first workflow tasks, mid-flight. */
async function waitInFlight(r: Rollout, ids: string[]) {
  await waitFor(
    () => statusesOf(r, ids),
    (s) => s.every((x) => x === 'running'),
    15_000,
  );
}

async function waitAllDone(r: Rollout, ids: string[]) {
  await waitFor(
    () => statusesOf(r, ids),
    (s) => s.every(isDone),
    30_000,
  );
}

/** Each succeeded exactly once: one reserve and one commit, nothing else. */
async function expectChargedOnce(ids: string[]) {
  const { rows } = await withSystemTx(systemDb(), (tx) =>
    tx.query<{ id: string; status: string; kinds: string[] | null }>(
      `SELECT g.id, g.status, array_agg(t.kind ORDER BY t.kind) FILTER (WHERE t.kind IS NOT NULL) AS kinds
       FROM generations g LEFT JOIN credit_transfers t ON t.generation_id = g.id
       WHERE g.id = ANY($1) GROUP BY g.id, g.status`,
      [ids],
    ),
  );
  expect(rows).toHaveLength(ids.length);
  for (const row of rows)
    expect(row).toEqual({ id: row.id, status: 'succeeded', kinds: ['commit', 'reserve'] });
}

describe('rolling out a new worker build (Worker Deployments, pinned generations)', () => {
  it(
    'lets generations started on build A finish on A while new ones start on B; then A is stopped',
    { timeout: 60_000 },
    async () => {
      const r = await startRollout();
      const user = await createUser(r.api.db, PER_BUILD * 2 * PRICE);
      const a = await startBuild(r, 'A');
      expect(await deploy(r, 'promote', 'A')).toContain('build A is current');
      const onA = await submit(r, user.auth, 'on A');
      await waitInFlight(r, onA);

      const b = await startBuild(r, 'B');
      expect(await deploy(r, 'promote', 'B')).toContain('build B is current (was A)');
      const onB = await submit(r, user.auth, 'on B');
      const status = await deploy(r, 'status');
      expect(status).toContain('current build B');
      expect(status).toMatch(/^A\tdraining/m);

      await waitAllDone(r, onA);
      // A's generations have drained: its worker may go while B's generations are still running.
      await a.stop();
      await waitAllDone(r, onB);

      for (const id of onA) expect(await identitiesOf(r, id)).toEqual([a.identity]);
      for (const id of onB) expect(await identitiesOf(r, id)).toEqual([b.identity]);
      await expectChargedOnce([...onA, ...onB]);
    },
  );

  it(
    'rolls back: promoting A again sends new generations to A, and those pinned to B finish on B',
    { timeout: 60_000 },
    async () => {
      const r = await startRollout();
      const user = await createUser(r.api.db, PER_BUILD * 2 * PRICE);
      const a = await startBuild(r, 'A');
      await deploy(r, 'promote', 'A');
      const b = await startBuild(r, 'B');
      await deploy(r, 'promote', 'B');
      const onB = await submit(r, user.auth, 'on B');
      await waitInFlight(r, onB);

      expect(await deploy(r, 'promote', 'A')).toContain('build A is current (was B)');
      const backOnA = await submit(r, user.auth, 'back on A');

      await waitAllDone(r, [...onB, ...backOnA]);
      for (const id of onB) expect(await identitiesOf(r, id)).toEqual([b.identity]);
      for (const id of backOnA) expect(await identitiesOf(r, id)).toEqual([a.identity]);
      await expectChargedOnce([...onB, ...backOnA]);
    },
  );
});
