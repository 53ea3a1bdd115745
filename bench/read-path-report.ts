// The read-path bench's table and JSON: every figure beside its same-run ceiling or its target.
import fs from 'node:fs/promises';
import type { LoadResult } from './read-path-load';
import type { ProfileSummary } from './read-path-profile';
import type { StreamPhaseResult } from './read-path-streams';
import type { WaitSample } from './read-path-waits';

export type ReadCase = LoadResult & { label: string; dbWaits: WaitSample[] };

const READ_TARGET = 0.5;
const CPU_TARGET_PERCENT = 10;
const DELAY_TARGET_MS = 1000;

const f1 = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(1));
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
/** The other CPU figures of a window: this bench process (worker, clients), Postgres + Temporal, all. */
const others = (c: Record<string, number>) =>
  `bench process ${f1(c.bench)} %, Postgres + Temporal ${f1(c.stack)} %, machine ${f1(c.machine)} %`;

export async function reportReadPath(r: {
  log: (line: string) => void;
  outFile: string;
  meta: {
    startedAt: string;
    cores: number;
    connections: number;
    seconds: number;
    loadAverageAtStart: number;
    loadAverageAtEnd: number;
  };
  reads: ReadCase[];
  streams?: StreamPhaseResult;
  profile?: ProfileSummary;
}): Promise<void> {
  const { log, reads, streams, profile } = r;
  log(
    `started ${r.meta.startedAt}; ${r.meta.cores} cores; ${r.meta.connections} connections; ${r.meta.seconds} s per run; ` +
      `1-min load average ${r.meta.loadAverageAtStart.toFixed(1)} at start, ${r.meta.loadAverageAtEnd.toFixed(1)} at end`,
  );
  const health = reads[0];
  const single = reads[1];
  const readRatio = health && single ? single.requestsPerSecond / health.requestsPerSecond : undefined;
  if (health) {
    log('');
    log(
      '| request (one API process, autocannon) | req/s | p50 ms | p99 ms | API CPU % | Postgres + Temporal CPU % | machine CPU % | ratio to /health |',
    );
    log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const c of reads) {
      log(
        `| ${c.label} | ${f1(c.requestsPerSecond)} | ${f1(c.p50Ms)} | ${f1(c.p99Ms)} | ${f1(c.cpuPercent.api)} | ${f1(c.cpuPercent.stack)} | ${f1(c.cpuPercent.machine)} | ${(c.requestsPerSecond / health.requestsPerSecond).toFixed(2)}× |`,
      );
    }
    log(`target: GET /v1/generations/:id ≥ ${READ_TARGET}× /health: ${met((readRatio ?? 0) >= READ_TARGET)}`);
    const floor = reads.find((c) => c.label.startsWith('floor: bare Fastify, the same'));
    if (floor && single) {
      log(
        `  the floor (one statement per request and nothing else; its own process, in the API CPU column) runs at ` +
          `${(floor.requestsPerSecond / health.requestsPerSecond).toFixed(2)}× /health; the full GET at ` +
          `${(single.requestsPerSecond / floor.requestsPerSecond).toFixed(2)}× the floor`,
      );
    }
    for (const c of reads.slice(1)) {
      const waits = c.dbWaits.slice(0, 4).map((w) => `${w.what} ${w.average.toFixed(1)}`);
      log(`  ${c.label}: the API's busy Postgres sessions on average: ${waits.join(', ') || 'none'}`);
    }
    log(
      '(CPU %: 100 = one core busy; the machine figure is every process, other sessions included, out of 100 × cores)',
    );
  }
  const cpuOk = streams ? streams.cpuStreamsOpen.api! < CPU_TARGET_PERCENT : undefined;
  const delayOk = streams
    ? streams.missingTerminal === 0 && streams.terminalDelayMs.max <= DELAY_TARGET_MS
    : undefined;
  if (streams) {
    const d = streams.terminalDelayMs;
    log('');
    log(
      `| event streams: ${streams.streams} on one API process, ${streams.generations} generations × ${streams.perGeneration} streams | value |`,
    );
    log('| --- | --- |');
    log(
      `| API CPU, generations waiting, no stream open (baseline) | ${f1(streams.cpuNoStreams.api)} % (${others(streams.cpuNoStreams)}) |`,
    );
    log(
      `| API CPU, ${streams.streams} streams open, generations waiting (target < ${CPU_TARGET_PERCENT} %) | ${f1(streams.cpuStreamsOpen.api)} %: ${met(cpuOk!)} (${others(streams.cpuStreamsOpen)}) |`,
    );
    log(`| streams still open at the end of that window | ${streams.stillOpen} of ${streams.streams} |`);
    log(
      `| meanwhile, one progress query (as the hub makes per waiting generation per 500 ms tick): p50 / max | ${f1(streams.progressQueryMs.p50)} / ${f1(streams.progressQueryMs.max)} ms (${streams.progressQueryMs.count} made) |`,
    );
    log(`| opening them all, 50 at a time, until each had its first event | ${f1(streams.openSeconds)} s |`);
    log(
      `| done event after completed_at: p50 / p99 / max (target every one ≤ ${DELAY_TARGET_MS} ms) | ${f1(d.p50)} / ${f1(d.p99)} / ${f1(d.max)} ms: ${met(delayOk!)} |`,
    );
    const sd = streams.statusDelayMs;
    log(
      `| of that, completed_at to the terminal status event (sent before done's per-stream load): p50 / p99 / max | ${f1(sd.p50)} / ${f1(sd.p99)} / ${f1(sd.max)} ms |`,
    );
    log(
      `| streams without a done event | ${streams.missingTerminal}${Object.keys(streams.otherTerminal).length ? ` (${JSON.stringify(streams.otherTerminal)})` : ''} |`,
    );
    log(
      `| cancel answers other than 202 (a 5xx or failed connection is retried, 3 tries) | ${streams.cancelFailures.length} |`,
    );
    log(
      `| while the ${streams.generations} cancels (10 at a time) ended them | ${f1(streams.end.seconds)} s, API CPU ${f1(streams.end.cpu.api)} % (${others(streams.end.cpu)}) |`,
    );
    if (streams.apiExited) log(`  THE API PROCESS DIED during the stream phase: ${streams.apiExited}`);
    for (const failure of streams.cancelFailures.slice(0, 3))
      log(`  cancel failed: ${failure.slice(0, 300)}`);
  }
  if (profile) {
    log('');
    log(`CPU profile of the API process under the GET /v1/generations/:id load: ${profile.file}`);
    log(
      `(${f1(profile.totalMs)} ms of CPU sampled during the measured run, idle left out; start-up and warm-up not counted)`,
    );
    log('| top self time: function | ms | % |');
    log('| --- | --- | --- |');
    for (const fn of profile.functions) log(`| ${fn.name} | ${f1(fn.ms)} | ${f1(fn.percent)} |`);
    log('| self time by package or folder | ms | % |');
    log('| --- | --- | --- |');
    for (const p of profile.places) log(`| ${p.name} | ${f1(p.ms)} | ${f1(p.percent)} |`);
  }
  const json = {
    ...r.meta,
    reads: reads.map((c) => ({
      ...c,
      ratioToHealth: health ? c.requestsPerSecond / health.requestsPerSecond : null,
    })),
    readTarget: {
      ratio: READ_TARGET,
      measured: readRatio ?? null,
      met: readRatio !== undefined && readRatio >= READ_TARGET,
    },
    streams: streams
      ? {
          ...streams,
          terminalDelayMs: { ...streams.terminalDelayMs, all: undefined },
          cpuTarget: { percent: CPU_TARGET_PERCENT, met: cpuOk },
          delayTarget: { ms: DELAY_TARGET_MS, met: delayOk },
        }
      : null,
    profile: profile ?? null,
  };
  await fs.writeFile(r.outFile, JSON.stringify(json, null, 2));
  log(`JSON: ${r.outFile}`);
}
