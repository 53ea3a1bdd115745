// `npm run bench -- generations`: what a generation costs Velro, apart from any rendering, each figure
// beside its ceiling measured in the same run (issue #16), printed as a table and written as JSON to
// /tmp/velro-bench/generations.json.
//
// Velro's worker, the baselines' worker and a zero-cost provider (fal's queue protocol, answering at
// once: bench/zero-cost-provider.ts) run in processes of their own; the API runs in this one.
// Ceilings: a plain workflow start; the trivial workflow (200 at once, and one at a time); a bare
// Update-with-Start whose update waits on a local activity doing one INSERT (bench/baseline-workflow.ts).
//
// Environment (bench/run.ts owns the command line):
//   BENCH_ONLY=submit,orchestration,render,admission,load,memory  the sections to run (all by
//     default; the baselines always run). submit: idle submits, per-generation history and overhead;
//     orchestration: 200 at once, zero-cost provider; render: 200 at once, local renderer (1024² PNG);
//     admission: 200 at once, provider parked; load: submits at 20/s with 200 parked in flight;
//     memory: a fresh worker process's RSS with 1,000 in flight.
//   BENCH_IDLE_SUBMITS (50), BENCH_LOAD_SECONDS (10), BENCH_MEMORY_IN_FLIGHT (1000).
//   BENCH_CPU_PROF=1: Velro's first worker process runs with --cpu-prof (/tmp/velro-bench/cpu-prof);
//     its top self-time functions are printed at the end (use with BENCH_ONLY=orchestration).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../lib/paths';
import { formatTop, newestProfile, profileTop } from './cpu-profile-top';
import { measureBaselines } from './generations-baselines';
import { Report } from './generations-report';
import { idleSubmits, Parked, submitsUnderLoad, throughput, workerMemory } from './generations-runs';
import { startBenchStack } from './generations-stack';
import type { Bench } from './run';

const OUT_DIR = '/tmp/velro-bench';
const SECTIONS = ['submit', 'orchestration', 'render', 'admission', 'load', 'memory'] as const;
type Section = (typeof SECTIONS)[number];

function selected(): Set<Section> {
  const only = (process.env.BENCH_ONLY ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (unknown.length)
    throw new Error(`BENCH_ONLY: unknown section(s) ${unknown.join(', ')}; known: ${SECTIONS.join(', ')}`);
  return new Set((only.length ? only : SECTIONS) as Section[]);
}

const envInt = (name: string, fallback: number) => {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number >= 1`);
  return n;
};

const bench: Bench = {
  name: 'generations',
  description:
    'orchestration (zero-cost provider), submit, admission and worker memory vs same-run Temporal baselines; render-included throughput',
  async run({ log }) {
    const sections = selected();
    const idleSubmitCount = envInt('BENCH_IDLE_SUBMITS', 50);
    const loadSeconds = envInt('BENCH_LOAD_SECONDS', 10);
    const inFlight = envInt('BENCH_MEMORY_IN_FLIGHT', 1000);
    const cpuProfileDir = process.env.BENCH_CPU_PROF === '1' ? path.join(OUT_DIR, 'cpu-prof') : undefined;
    if (cpuProfileDir) await fs.mkdir(cpuProfileDir, { recursive: true });
    const ranAt = new Date().toISOString();
    const r = new Report((row) => log(`    ${row}`));
    const out = path.join(OUT_DIR, 'generations.json');
    const meta = {
      bench: 'generations',
      ranAt,
      commit: gitDescribe(),
      node: process.version,
      cpus: os.availableParallelism(),
      sections: [...sections],
      settings: { idleSubmitCount, loadSeconds, inFlight },
    };
    let saved = Promise.resolve();
    const step = (what: string) => {
      log(`  [${((Date.now() - Date.parse(ranAt)) / 1000).toFixed(0)} s] ${what}`);
      // What is measured so far, should a later section fail or be cut short.
      saved = saved.then(() => r.write(out, { ...meta, partial: true }).catch(() => undefined));
    };

    step('starting Postgres, Temporal, the zero-cost provider and the workers');
    const s = await startBenchStack({ cpuProfileDir, log });
    try {
      step('baselines');
      const b = await measureBaselines(s.temporal);
      r.details.baselines = b;
      const trivial = { figure: 'trivial workflows/s, 200 at once', value: b.trivialPerSecond };

      if (sections.has('submit')) {
        step(`submit: ${idleSubmitCount} sequential submits, each run to the end before the next`);
        const idle = await idleSubmits(s, idleSubmitCount);
        r.details.idle = idle;
        r.add(
          'submit',
          'POST /v1/generations p50, idle, sequential',
          idle.submit.p50,
          'ms',
          {
            figure: 'bare UwS + local-activity INSERT p50',
            value: b.bareIdle.p50,
          },
          { op: '<=', ratio: 1.5 },
        );
        r.add('submit', 'POST /v1/generations p99, idle, sequential', idle.submit.p99, 'ms', {
          figure: 'bare UwS + LA p99',
          value: b.bareIdle.p99,
        });
        r.add('submit', 'POST /v1/generations p50, idle', idle.submit.p50, 'ms', {
          figure: 'plain workflow.start p50',
          value: b.plainStart.p50,
        });
        const h = idle.history;
        const vsTrivial = (k: keyof typeof h) => ({ figure: 'trivial workflow', value: b.trivialHistory[k] });
        r.add('per generation', 'history events per generation', h.events, 'events', vsTrivial('events'));
        r.add(
          'per generation',
          'workflow tasks per generation',
          h.workflowTasks,
          'tasks',
          vsTrivial('workflowTasks'),
        );
        r.add(
          'per generation',
          'activity tasks per generation',
          h.activityTasks,
          'tasks',
          vsTrivial('activityTasks'),
        );
        r.add(
          'per generation',
          'local activities per generation',
          h.localActivities,
          'LAs',
          vsTrivial('localActivities'),
        );
        r.add(
          'per generation',
          'end-to-end overhead p50, idle (submit → completed_at, minus provider time)',
          idle.overhead.p50,
          'ms',
          { figure: 'trivial workflow start → result p50', value: b.trivialLatency.p50 },
        );
      }

      if (sections.has('orchestration')) {
        step('orchestration: 200 generations at once, zero-cost provider');
        const o = await throughput(s, 'zero-cost');
        r.details.orchestration = o;
        r.add(
          'orchestration',
          'generations/s end to end, 200 at once, zero-cost provider',
          o.perSecond,
          '/s',
          trivial,
          {
            op: '>=',
            ratio: 0.5,
          },
        );
        r.add('orchestration', 'end-to-end overhead p50, 200 at once', o.overhead!.p50, 'ms', {
          figure: 'trivial workflow start → result p50 (idle)',
          value: b.trivialLatency.p50,
        });
      }

      if (sections.has('render')) {
        step('render: 200 generations at once, local renderer');
        const o = await throughput(s, 'local');
        r.details.render = o;
        r.add(
          'render-included',
          'generations/s, 200 at once (local renderer, 1024² PNG rendered)',
          o.perSecond,
          '/s',
          trivial,
        );
      }

      const parked = new Parked(s);
      if (sections.has('admission')) {
        step('admission: 200 submits at once, provider parked');
        const a = await parked.admission();
        r.details.admission = a;
        r.add(
          'admission',
          'admitted/s, 200 submits at once, provider parked',
          a.perSecond,
          '/s',
          {
            figure: 'bare UwS + LA, 200 at once',
            value: b.barePerSecond,
          },
          { op: '>=', ratio: 0.5 },
        );
      }

      if (sections.has('load')) {
        step(`load: 20 submits/s for ${loadSeconds} s with 200 generations parked in flight`);
        const l = await submitsUnderLoad(s, parked, 20, loadSeconds);
        r.details.load = l;
        r.add(
          'submit',
          'POST /v1/generations p99, 20/s, 200 in flight',
          l.submit.p99,
          'ms',
          {
            figure: 'bare UwS + LA p99, idle',
            value: b.bareIdle.p99,
          },
          { op: '<=', ratio: 3 },
        );
        r.add('submit', 'POST /v1/generations p50, 20/s, 200 in flight', l.submit.p50, 'ms', {
          figure: 'bare UwS + LA p50, idle',
          value: b.bareIdle.p50,
        });
      }

      if (sections.has('memory')) {
        for (const deployed of [true, false]) {
          const how = deployed
            ? 'as deployed (compiled, docker-compose.yml flags)'
            : 'under tsx (npm run worker)';
          step(`memory: a fresh worker process ${how} with ${inFlight} generations in flight`);
          const m = await workerMemory(s, parked, inFlight, deployed);
          r.details[deployed ? 'memory' : 'memoryUnderTsx'] = m;
          r.add(
            'memory',
            `worker RSS ${how}, ${m.inFlight} generations in flight (idle: ${m.idleRssMb.toFixed(0)} MB)`,
            m.rssMb,
            'MB',
            { figure: 'limit', value: 300 },
            deployed ? { op: '<=', ratio: 1 } : undefined,
          );
        }
      }
      await parked.terminate();
    } catch (err) {
      // Shown before the (bounded, but slow) cleanup.
      log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      throw err;
    } finally {
      step('stopping');
      r.details.lateWorkflowTasks = { ...s.childWarnings.lateWorkflowTasks };
      await s.close();
    }

    for (const line of r.table()) log(line);
    for (const [name, d] of Object.entries(r.details)) {
      const statuses = (d as { statuses?: Record<string, number> }).statuses;
      const notSucceeded = Object.entries(statuses ?? {}).filter(([status]) => status !== 'succeeded');
      if (notSucceeded.length)
        log(`${name}: generations that did not succeed: ${JSON.stringify(Object.fromEntries(notSucceeded))}`);
      const refused = (d as { refused?: number; firstError?: string }).refused;
      if (refused)
        log(`${name}: ${refused} submits refused, first: ${(d as { firstError?: string }).firstError}`);
    }
    const late = Object.entries(s.childWarnings.lateWorkflowTasks);
    if (late.length) {
      log(
        `workflow tasks answered after the server dropped them ("Task not found when completing"): ${late.map(([n, c]) => `${n} ${c}`).join(', ')}`,
      );
    }
    if (cpuProfileDir) {
      const file = await newestProfile(cpuProfileDir);
      if (file) {
        const top = await profileTop(file, 15);
        r.details.cpuProfile = top;
        for (const line of formatTop(top)) log(line);
      }
    }
    await saved;
    await r.write(out, meta);
    log(`JSON: ${out}`);
  },
};

export function gitDescribe(): string | null {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: PROJECT_ROOT })
      .toString()
      .trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: PROJECT_ROOT }).toString().trim();
    return dirty ? `${head}+uncommitted` : head;
  } catch {
    return null;
  }
}

export default bench;
