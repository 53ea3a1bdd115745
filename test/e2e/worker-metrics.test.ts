import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withUserTx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { freePort } from '../../lib/net/free-port';
import { PROJECT_ROOT } from '../../lib/paths';
import { NonRetryableProviderError, type Provider } from '../../lib/providers/provider';
import { createProviders, createStorage } from '../../lib/wiring/from-config';
import { activityDeps, createWorker } from '../../worker/create-worker';
import { prepareWorkerMetrics, type WorkerMetricsServer } from '../../worker/metrics-server';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from '../../worker/workflow-state';
import { createUser, startApi, testStack, waitFor, type ApiHarness } from '../support/context';

// A real worker wired as worker/main.ts wires it (the SDK's Prometheus exporter installed on the
// Runtime, Velro's metrics in the activities' deps, /metrics on a port of its own), a real API,
// real generations through the local provider; the one refused carries this word in its prompt.
const REFUSE = 'refuse-me';
const MODEL = 'flux-pro-v1.1-ultra';
const TOKEN = randomBytes(24).toString('base64url');
const DASHBOARD = path.join(PROJECT_ROOT, 'deploy/grafana/velro-dashboard.json');

let api: ApiHarness;
let worker: Worker;
let running: Promise<void>;
let connection: NativeConnection;
let server: WorkerMetricsServer;
let url: string;

/** The local renderer, except that it refuses (content_policy) any prompt containing REFUSE. */
function refusingSome(local: Provider): Provider {
  return Object.assign(Object.create(local) as Provider, {
    submit: (job: Parameters<Provider['submit']>[0]) =>
      job.input.prompt.includes(REFUSE)
        ? Promise.reject(new NonRetryableProviderError('content_policy', 'refused by the test'))
        : local.submit(job),
  });
}

beforeAll(async () => {
  const port = await freePort();
  api = await startApi({
    WORKER_METRICS_PORT: String(port),
    METRICS_TOKEN: TOKEN,
    LOCAL_PROVIDER_LATENCY_MS: '200',
  });
  const setup = await prepareWorkerMetrics(api.config);
  Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { ...setup.telemetry } });
  connection = await NativeConnection.connect({ address: testStack().temporalAddress });
  const storage = createStorage(api.config);
  const providers = createProviders(api.config, storage);
  worker = await createWorker({
    config: api.config,
    connection,
    workflowBundlePath: testStack().workflowBundlePath,
    deps: activityDeps(api.config, {
      db: api.db,
      systemDb: api.systemDb,
      storage,
      providers: { ...providers, local: refusingSome(providers.local!) },
      workflowState: workflowStateOf(api.temporal),
      stoppedGenerations: stoppedGenerationsOf(api.temporal),
      signalGranted: signalCapacityGrantedOf(api.temporal),
      metrics: setup.metrics,
    }),
  });
  running = worker.run();
  server = await setup.serve({ db: api.db, systemDb: api.systemDb, log: { warn: () => {} } });
  expect(server.port).toBe(port);
  url = `http://127.0.0.1:${port}/metrics`;
}, 120_000);

afterAll(async () => {
  await server?.close();
  worker?.shutdown();
  await running;
  await connection?.close();
  await api?.stop();
});

const scrape = async (headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) => {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
};

/** The sample `name{labels}` in Prometheus text, or undefined (labels in exposition order). */
function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Every metric family a Prometheus text exposition declares (its `# TYPE` lines). */
const familiesOf = (body: string) => new Set([...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]!));

async function settle(user: Awaited<ReturnType<typeof createUser>>, prompt: string) {
  const res = await api.app.inject({
    method: 'POST',
    url: '/v1/generations',
    headers: { ...user.auth, 'idempotency-key': randomUUID() },
    payload: { model: MODEL, input: { prompt } },
  });
  expect(res.statusCode, res.body).toBe(202);
  const id = res.json().id as string;
  return waitFor(
    async () =>
      (await api.app.inject({ url: `/v1/generations/${id}`, headers: user.auth })).json() as {
        status: string;
        credits: { state: string };
      },
    (g) => ['succeeded', 'failed', 'canceled'].includes(g.status) && g.credits.state !== 'reserved',
    60_000,
  );
}

describe('WORKER_METRICS_PORT=0', () => {
  it('turns the worker metrics off: no exporter for the SDK, nothing counted, nothing served', async () => {
    const off = await prepareWorkerMetrics({ ...api.config, WORKER_METRICS_PORT: 0 });
    expect(off.telemetry).toEqual({});
    const served = await off.serve({ db: api.db, systemDb: api.systemDb, log: { warn: () => {} } });
    expect(served.port).toBeUndefined();
    await served.close();
  });
});

describe('the worker /metrics', () => {
  it('refuses to start on a port already taken, naming WORKER_METRICS_PORT', async () => {
    const taken = await prepareWorkerMetrics({ ...api.config, WORKER_METRICS_PORT: server.port! });
    await expect(
      taken.serve({ db: api.db, systemDb: api.systemDb, log: { warn: () => {} } }),
    ).rejects.toThrow(/WORKER_METRICS_PORT.*EADDRINUSE/);
  });

  it('refuses a scrape without the token, with a wrong one or another scheme (401 problem+json)', async () => {
    const wrong: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Basic ${TOKEN}` },
    ];
    for (const headers of wrong) {
      const res = await scrape(headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.type).toBe('application/problem+json');
      expect(JSON.parse(res.body)).toMatchObject({ status: 401, code: 'unauthorized' });
      expect(res.body).not.toContain('velro_');
    }
    const other = await fetch(url.replace('/metrics', '/other'));
    expect(other.status).toBe(404);
  });

  it('counts a succeeded and a failed generation by model and outcome, with their latency and the provider error', async () => {
    const user = await createUser(api.db, 500);
    expect((await settle(user, `fine ${randomUUID()}`)).status).toBe('succeeded');
    expect((await settle(user, `${REFUSE} ${randomUUID()}`)).status).toBe('failed');
    const { status, body } = await scrape();
    expect(status).toBe(200);
    expect(sample(body, `velro_generations_finished_total{model="${MODEL}",outcome="succeeded"}`)).toBe(1);
    expect(sample(body, `velro_generations_finished_total{model="${MODEL}",outcome="failed"}`)).toBe(1);
    expect(body).not.toMatch(/velro_generations_finished_total\{[^}]*outcome="canceled"/);
    for (const outcome of ['succeeded', 'failed']) {
      expect(
        sample(body, `velro_generation_duration_seconds_count{model="${MODEL}",outcome="${outcome}"}`),
      ).toBe(1);
      const seconds = sample(
        body,
        `velro_generation_duration_seconds_sum{model="${MODEL}",outcome="${outcome}"}`,
      );
      expect(seconds).toBeGreaterThan(0);
      expect(seconds).toBeLessThan(60);
    }
    expect(
      sample(body, 'velro_provider_errors_total{provider="local",operation="submit",kind="content_policy"}'),
    ).toBe(1);
    // The SDK's side of the same refusal: the submit activity's failed attempt.
    expect(body).toMatch(
      /^temporal_activity_execution_failed_total\{activity_type="submitToProvider",[^}]*\} 1$/m,
    );
  }, 120_000);

  it("relays the Temporal SDK's own series, in one exposition with Velro's", async () => {
    const { body } = await scrape();
    if (process.env.PRINT_METRICS) console.log(body);
    const families = familiesOf(body);
    const temporal = [...families].filter((f) => f.startsWith('temporal_'));
    expect(temporal.length).toBeGreaterThan(10);
    for (const f of [
      'temporal_workflow_task_schedule_to_start_latency_seconds',
      'temporal_sticky_cache_size',
      'temporal_num_pollers',
      'temporal_worker_task_slots_available',
    ]) {
      expect(families, f).toContain(f);
    }
    // A family declared twice would make the whole scrape invalid for Prometheus.
    const declared = [...body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    expect(declared.length).toBe(new Set(declared).size);
    expect(sample(body, 'velro_metrics_source_up{source="temporal_sdk"}')).toBe(1);
  });

  it('reads the unsettled reservations from the ledger at each scrape', async () => {
    const before = await scrape();
    const open0 = sample(before.body, 'velro_ledger_unsettled_reservations{state="open"}')!;
    const credits0 = sample(before.body, 'velro_ledger_unsettled_credits{state="open"}')!;
    expect(open0).toBeGreaterThanOrEqual(0);
    const user = await createUser(api.db, 100);
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    await withUserTx(api.db, user.userId, async (tx) => {
      for (const id of ids) {
        await ledger.reserve(tx, {
          id,
          amount: 7,
          generationId: null,
          deadline: new Date(Date.now() + 3_600_000),
        });
      }
    });
    const held = await scrape();
    expect(sample(held.body, 'velro_ledger_unsettled_reservations{state="open"}')).toBe(open0 + 3);
    expect(sample(held.body, 'velro_ledger_unsettled_credits{state="open"}')).toBe(credits0 + 21);
    await withUserTx(api.db, user.userId, (tx) =>
      ledger.release(tx, { id: randomUUID(), pendingId: ids[0]!, reason: 'test' }),
    );
    const after = await scrape();
    expect(sample(after.body, 'velro_ledger_unsettled_reservations{state="open"}')).toBe(open0 + 2);
    expect(sample(after.body, 'velro_ledger_unsettled_credits{state="open"}')).toBe(credits0 + 14);
    expect(sample(after.body, 'velro_metrics_source_up{source="ledger"}')).toBe(1);
    expect(sample(after.body, 'velro_metrics_source_up{source="capacity"}')).toBe(1);
  });

  it('exports every metric the Grafana dashboard queries (the worker here, the API through its own /metrics)', async () => {
    const apiRes = await api.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(apiRes.statusCode).toBe(200);
    const exported = new Set([...familiesOf((await scrape()).body), ...familiesOf(apiRes.body)]);
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets ?? []) {
        for (const [name] of expr.matchAll(/\b(?:velro|temporal)_[a-z0-9_]+/g)) queried.add(name);
      }
    }
    expect(queried.size).toBeGreaterThan(10);
    // A histogram's series carry _bucket, _sum and _count after its family's name.
    const family = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
    const missing = [...queried].filter((n) => !exported.has(n) && !exported.has(family(n)));
    expect(missing).toEqual([]);
  });
});
