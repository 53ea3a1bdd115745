// `npm run bench -- generations --cluster`: the generations bench's orchestration figure on the real
// cluster (lib/dev/cluster.ts: temporal-server 1.32.2 on embedded Postgres, not the dev server):
// generations/s, 200 at once, zero-cost provider, with 1 and then 2 Velro worker processes, each beside
// the trivial workflow's rate with as many baselines' workers, on the same cluster in the same run.
// Each figure is the median of BENCH_CLUSTER_ROUNDS rounds (3) after one warm-up round; the CPU % of
// temporal-server, Postgres, each worker, the provider and this process (API + clients) is measured
// over every run, so the table shows which one saturates. JSON: /tmp/velro-bench/generations-cluster.json.
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Connection, type Client } from '@temporalio/client';
import { setCurrentBuild } from '../lib/temporal/worker-deployment';
import { BASELINE_TASK_QUEUE } from './baseline-activity';
import { gitDescribe } from './generations';
import { startClusterStack, type ClusterStack } from './generations-cluster-stack';
import { atOnce, median } from './generations-measure';
import { Report } from './generations-report';
import { throughput, type ThroughputRun } from './generations-runs';
import { startBenchStack, type BenchStack } from './generations-stack';
import { cpuSecondsOf, machineBusySeconds, ownCpuSeconds, type CpuSources } from './read-path-api';
import type { Bench } from './run';

const OUT = '/tmp/velro-bench/generations-cluster.json';
const AT_ONCE = 200;
/**
 * The workers join a Worker Deployment as this build, as deployed workers do (README, Rolling out):
 * a generation is PINNED to its build there (workflows/generation.ts), the path production takes.
 */
const BUILD_ID = 'bench';

/** Makes BUILD_ID current once a worker of it has polled (refused before). */
async function makeBuildCurrent(address: string): Promise<void> {
  const connection = await Connection.connect({ address, connectTimeout: 10_000 });
  const target = { connection, namespace: 'default', deploymentName: 'velro' };
  for (let attempt = 1; ; attempt++) {
    try {
      await setCurrentBuild(target, BUILD_ID);
      await connection.close();
      return;
    } catch (err) {
      if (attempt >= 30) {
        await connection.close();
        throw err;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

interface CpuUse {
  /** CPU % per process over the runs (100 = one core busy); `machine` is % of all cores. */
  percent: Record<string, number>;
  wallSeconds: number;
}

interface WorkersResult {
  workers: number;
  generationsPerSecond: number;
  trivialPerSecond: number;
  rounds: { generations: ThroughputRun; trivialPerSecond: number }[];
  cpu: { generations: CpuUse; trivial: CpuUse };
}

/** Sums each source's CPU seconds and the wall time over several runs. */
class CpuTotals {
  private readonly cpu = new Map<string, number>();
  private wall = 0;

  async over<T>(sources: CpuSources, run: () => Promise<T>): Promise<T> {
    const at0 = Object.entries(sources).map(([name, read]) => [name, read()] as const);
    const t = performance.now();
    const result = await run();
    this.wall += (performance.now() - t) / 1000;
    for (const [name, before] of at0)
      this.cpu.set(name, (this.cpu.get(name) ?? 0) + sources[name]!() - before);
    return result;
  }

  use(): CpuUse {
    const cores = os.availableParallelism();
    const percent = Object.fromEntries(
      [...this.cpu].map(([name, s]) => [name, (s / this.wall) * 100 * (name === 'machine' ? 1 / cores : 1)]),
    );
    return { percent, wallSeconds: this.wall };
  }
}

async function trivialPerSecond(temporal: Client): Promise<number> {
  const run = await atOnce(AT_ONCE, () =>
    temporal.workflow.execute('TrivialWorkflow', {
      taskQueue: BASELINE_TASK_QUEUE,
      workflowId: `trivial-${randomUUID()}`,
    }),
  );
  return AT_ONCE / run.seconds;
}

function summary(run: ThroughputRun): string {
  const refused = run.refused ? `, ${run.refused} refused (first: ${run.firstError})` : '';
  return `${run.perSecond.toFixed(1)} generations/s in ${run.seconds.toFixed(0)} s${refused}`;
}

async function measure(
  s: BenchStack,
  workers: number,
  rounds: number,
  sources: CpuSources,
  step: (what: string) => void,
): Promise<WorkersResult> {
  step(`${workers} worker(s): warm-up round`);
  await trivialPerSecond(s.temporal);
  step(`${workers} worker(s): warm-up ${summary(await throughput(s, 'zero-cost'))}`);
  const genCpu = new CpuTotals();
  const trivialCpu = new CpuTotals();
  const done: WorkersResult['rounds'] = [];
  for (let i = 1; i <= rounds; i++) {
    const trivial = await trivialCpu.over(sources, () => trivialPerSecond(s.temporal));
    const generations = await genCpu.over(sources, () => throughput(s, 'zero-cost'));
    step(
      `${workers} worker(s), round ${i}/${rounds}: ${summary(generations)}, ${trivial.toFixed(1)} trivial/s`,
    );
    done.push({ generations, trivialPerSecond: trivial });
  }
  return {
    workers,
    generationsPerSecond: median(done.map((r) => r.generations.perSecond)),
    trivialPerSecond: median(done.map((r) => r.trivialPerSecond)),
    rounds: done,
    cpu: { generations: genCpu.use(), trivial: trivialCpu.use() },
  };
}

function cpuTable(results: WorkersResult[]): string[] {
  const columns = results.flatMap((r) => [
    [`trivial, ${r.workers}w`, r.cpu.trivial],
    [`generations, ${r.workers}w`, r.cpu.generations],
  ]) as [string, CpuUse][];
  const names = [...new Set(columns.flatMap(([, c]) => Object.keys(c.percent)))];
  const cell = (c: CpuUse, name: string) =>
    c.percent[name] === undefined ? '—' : `${c.percent[name]!.toFixed(0)} %`;
  return [
    `| CPU (100 % = one core; machine: % of all ${os.availableParallelism()} cores) | ${columns.map(([h]) => h).join(' | ')} |`,
    `| --- |${columns.map(() => ' --- |').join('')}`,
    ...names.map((name) => `| ${name} | ${columns.map(([, c]) => cell(c, name)).join(' | ')} |`),
  ];
}

/** The busiest process over the generation runs, and how busy the machine was. */
function bound(r: WorkersResult): string {
  const { machine, ...processes } = r.cpu.generations.percent;
  const [name, pct] = Object.entries(processes).sort((a, b) => b[1] - a[1])[0]!;
  return `${r.workers} worker(s): busiest process ${name} at ${pct.toFixed(0)} % of a core; machine ${machine!.toFixed(0)} % busy`;
}

const bench: Bench = {
  name: 'generations',
  description:
    'generations/s with 1 and 2 workers on the real cluster vs the trivial workflow there (--cluster)',
  async run({ log }) {
    const rounds = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 3);
    if (!Number.isInteger(rounds) || rounds < 1)
      throw new Error('BENCH_CLUSTER_ROUNDS must be a whole number >= 1');
    const ranAt = new Date().toISOString();
    const step = (what: string) =>
      log(`  [${((Date.now() - Date.parse(ranAt)) / 1000).toFixed(0)} s] ${what}`);
    const r = new Report((row) => log(`    ${row}`));
    const meta = {
      bench: 'generations --cluster',
      ranAt,
      commit: gitDescribe(),
      node: process.version,
      cpus: os.availableParallelism(),
      temporal: 'temporal-server 1.32.2 on embedded Postgres (lib/dev/cluster.ts)',
      settings: { atOnce: AT_ONCE, rounds },
      loadAverageAtStart: os.loadavg(),
    };

    step('starting the cluster (Postgres, temporal-server), the zero-cost provider and the workers');
    let cluster: ClusterStack | undefined;
    // The bench's children (every worker, the second ones too) start from this process's environment.
    const buildIdBefore = process.env.TEMPORAL_BUILD_ID;
    process.env.TEMPORAL_BUILD_ID = BUILD_ID;
    const restoreBuildId = () => {
      if (buildIdBefore === undefined) delete process.env.TEMPORAL_BUILD_ID;
      else process.env.TEMPORAL_BUILD_ID = buildIdBefore;
    };
    const s = await startBenchStack({
      log,
      startStack: async (dataDir) => (cluster = await startClusterStack(dataDir, log)),
    }).catch((err: unknown) => {
      restoreBuildId();
      throw err;
    });
    const results: WorkersResult[] = [];
    try {
      await makeBuildCurrent(cluster!.temporalAddress);
      const c = cluster!;
      const sources: CpuSources = {
        'temporal-server': c.temporalCpuSeconds,
        postgres: c.postgresCpuSeconds,
        'velro worker 1': () => cpuSecondsOf(s.worker.child.pid!),
        'baselines worker 1': () => cpuSecondsOf(s.baseline.child.pid!),
        'zero-cost provider': () => cpuSecondsOf(s.provider.child.pid!),
        'bench process (API + clients)': ownCpuSeconds,
        machine: machineBusySeconds,
      };
      results.push(await measure(s, 1, rounds, sources, step));
      step('starting a second Velro worker and a second baselines worker');
      const [velro2, baseline2] = await Promise.all([s.addWorker('velro'), s.addWorker('baseline')]);
      sources['velro worker 2'] = () => cpuSecondsOf(velro2.child.pid!);
      sources['baselines worker 2'] = () => cpuSecondsOf(baseline2.child.pid!);
      results.push(await measure(s, 2, rounds, sources, step));
    } catch (err) {
      log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      throw err;
    } finally {
      step('stopping');
      restoreBuildId();
      await s.close();
    }

    const [one, two] = results as [WorkersResult, WorkersResult];
    for (const w of results) {
      const n = w.workers === 1 ? '1 worker' : `${w.workers} workers`;
      r.add(
        'cluster',
        `generations/s, ${AT_ONCE} at once, zero-cost provider, ${n}`,
        w.generationsPerSecond,
        '/s',
        { figure: `trivial workflows/s, ${AT_ONCE} at once, ${n}`, value: w.trivialPerSecond },
        { op: '>=', ratio: 0.5 },
      );
    }
    r.add('scaling', 'generations/s, 2 workers', two.generationsPerSecond, '/s', {
      figure: 'generations/s, 1 worker',
      value: one.generationsPerSecond,
    });
    r.add('scaling', 'trivial workflows/s, 2 workers', two.trivialPerSecond, '/s', {
      figure: 'trivial workflows/s, 1 worker',
      value: one.trivialPerSecond,
    });
    r.details.runs = results;
    r.details.lateWorkflowTasks = { ...s.childWarnings.lateWorkflowTasks };
    for (const line of r.table()) log(line);
    log('');
    for (const line of cpuTable(results)) log(line);
    for (const w of results) log(bound(w));
    const notSucceeded = results.flatMap((w) =>
      w.rounds.flatMap((round) =>
        Object.entries(round.generations.statuses).filter(([status]) => status !== 'succeeded'),
      ),
    );
    if (notSucceeded.length) log(`generations that did not succeed: ${JSON.stringify(notSucceeded)}`);
    const refused = results.reduce((n, w) => n + w.rounds.reduce((m, x) => m + x.generations.refused, 0), 0);
    if (refused) log(`${refused} submits refused`);
    const late = Object.entries(s.childWarnings.lateWorkflowTasks);
    if (late.length) log(`late workflow tasks: ${late.map(([n, k]) => `${n} ${k}`).join(', ')}`);
    const loadAverageAtEnd = os.loadavg();
    log(
      `load averages (1/5/15 min) at start ${meta.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadAverageAtEnd.map((l) => l.toFixed(2)).join(' ')}`,
    );
    await r.write(OUT, { ...meta, loadAverageAtEnd });
    log(`JSON: ${path.resolve(OUT)}`);
  },
};

export default bench;
