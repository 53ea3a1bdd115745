// 1,000 open event streams on one API process: its CPU while they idle, then how soon each stream's
// terminal event (`done`) arrives after its generation ends (completed_at, set by the cancel).
import { withSystemTx, type SystemDb } from '../lib/db/pool';
import { cpuPercentOver, startCpuMeter, type CpuSources } from './read-path-api';
import { inBatches, openStream, type SseStream } from './read-path-sse';

export interface StreamPhaseOptions {
  apiUrl: string;
  authorization: string;
  systemDb: SystemDb;
  /** Submits one generation that will wait at the provider (202). */
  submit(): Promise<{ id: string }>;
  streams: number;
  generations: number;
  seconds: number;
  cancelConcurrency: number;
  cpu: CpuSources;
  apiExited(): string | undefined;
  /** One progress query of a waiting generation's workflow, as the API's event hub makes every tick. */
  queryProgress(generationId: string): Promise<unknown>;
  progress(line: string): void;
}

export interface StreamPhaseResult {
  streams: number;
  generations: number;
  perGeneration: number;
  /** CPU % by source over `seconds`, before any stream is open (generations waiting). */
  cpuNoStreams: Record<string, number>;
  /** The same with every stream open. */
  cpuStreamsOpen: Record<string, number>;
  stillOpen: number;
  /** Latency of progress queries made one after another (from this process) while the streams idled. */
  progressQueryMs: { count: number; p50: number; max: number };
  openSeconds: number;
  terminalDelayMs: { p50: number; p99: number; max: number; all: number[] };
  /** Of that: completed_at to the terminal `status` event (the hub seeing the row change). */
  statusDelayMs: { p50: number; p99: number; max: number };
  /** Streams whose `done` never came (ended without it, an `error` event, or nothing by the deadline). */
  missingTerminal: number;
  otherTerminal: Record<string, number>;
  cancelFailures: string[];
  /** Set when the API process died during the phase: how. */
  apiExited?: string;
  end: { seconds: number; cpu: Record<string, number> };
}

const percentile = (sorted: number[], p: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! : NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runStreamPhase(opts: StreamPhaseOptions): Promise<StreamPhaseResult> {
  const { apiUrl, authorization, cpu } = opts;
  const perGeneration = Math.ceil(opts.streams / opts.generations);
  const ids = (
    await inBatches(
      Array.from({ length: opts.generations }, (_, i) => i),
      20,
      () => opts.submit(),
    )
  ).map((g) => g.id);
  await waitAtProvider(opts.systemDb, ids, 120_000);
  opts.progress(`${ids.length} generations waiting at the provider`);
  const cpuNoStreams = await cpuPercentOver(cpu, opts.seconds * 1000);

  const streams: SseStream[] = [];
  try {
    const openedAt = performance.now();
    await inBatches(
      Array.from({ length: opts.streams }, (_, i) => ids[i % ids.length]!),
      50,
      async (id) => {
        const s = openStream(apiUrl, id, authorization);
        streams.push(s);
        await s.opened;
      },
    );
    await waitFor(() => streams.every((s) => s.events.length > 0), 60_000, 'first event on every stream');
    const openSeconds = (performance.now() - openedAt) / 1000;
    opts.progress(`${streams.length} streams open in ${openSeconds.toFixed(1)} s`);
    await sleep(1000);
    const probing = probeQueries(ids, opts.queryProgress, opts.seconds * 1000);
    const cpuStreamsOpen = await cpuPercentOver(cpu, opts.seconds * 1000);
    const queryMs = (await probing).sort((a, b) => a - b);
    const stillOpen = streams.filter((s) => !s.ended && !s.terminal).length;

    // A cancel is a terminal event too; its completed_at is where each delay starts.
    const stopMeter = startCpuMeter(cpu);
    const endStarted = performance.now();
    const cancelFailures: string[] = [];
    await inBatches(ids, opts.cancelConcurrency, async (id) => {
      // As a client would: a 5xx or a failed connection is retried after a second, up to three tries.
      for (let attempt = 1; ; attempt++) {
        const answer = await fetch(`${apiUrl}/v1/generations/${id}/cancel`, {
          method: 'POST',
          headers: { authorization },
        }).then(
          async (r) => ({ status: r.status, text: await r.text() }),
          (err: Error) => ({ status: 0, text: `${err.message}: ${String(err.cause)}` }),
        );
        if (answer.status === 202) return;
        cancelFailures.push(`${id} (try ${attempt}): ${answer.status} ${answer.text}`);
        if ((answer.status > 0 && answer.status < 500) || attempt === 3) return;
        await sleep(1000);
      }
    });
    await waitFor(
      () => streams.every((s) => s.terminal || s.ended),
      30_000,
      'terminal event on every stream',
    ).catch(() => undefined);
    const end = { seconds: (performance.now() - endStarted) / 1000, cpu: stopMeter() };
    opts.progress(`cancels sent and streams ended in ${end.seconds.toFixed(1)} s`);

    const delays: number[] = [];
    const otherTerminal: Record<string, number> = {};
    for (const s of streams) {
      const data = s.terminal?.data as { completedAt?: string } | undefined;
      if (s.terminal?.event === 'done' && data?.completedAt) {
        delays.push(s.terminal.arrivedAt - Date.parse(data.completedAt));
      } else {
        const why = s.terminal?.event ?? (s.ended ? 'ended without done' : 'nothing by the deadline');
        otherTerminal[why] = (otherTerminal[why] ?? 0) + 1;
      }
    }
    delays.sort((a, b) => a - b);
    const statusDelays = streams
      .map((s) => {
        const data = s.terminal?.data as { completedAt?: string } | undefined;
        return s.terminalStatusAt && data?.completedAt
          ? s.terminalStatusAt - Date.parse(data.completedAt)
          : NaN;
      })
      .filter((d) => !Number.isNaN(d))
      .sort((a, b) => a - b);
    return {
      streams: opts.streams,
      generations: ids.length,
      perGeneration,
      cpuNoStreams,
      cpuStreamsOpen,
      stillOpen,
      progressQueryMs: {
        count: queryMs.length,
        p50: percentile(queryMs, 0.5),
        max: queryMs[queryMs.length - 1] ?? NaN,
      },
      openSeconds,
      terminalDelayMs: {
        p50: percentile(delays, 0.5),
        p99: percentile(delays, 0.99),
        max: delays[delays.length - 1] ?? NaN,
        all: delays,
      },
      statusDelayMs: {
        p50: percentile(statusDelays, 0.5),
        p99: percentile(statusDelays, 0.99),
        max: statusDelays[statusDelays.length - 1] ?? NaN,
      },
      missingTerminal: opts.streams - delays.length,
      otherTerminal,
      cancelFailures,
      apiExited: opts.apiExited(),
      end,
    };
  } finally {
    for (const s of streams) s.close();
  }
}

/** Progress queries one after another for `ms`, round the generations: their latencies. */
async function probeQueries(
  ids: string[],
  query: (id: string) => Promise<unknown>,
  ms: number,
): Promise<number[]> {
  const until = performance.now() + ms;
  const latencies: number[] = [];
  for (let i = 0; performance.now() < until; i++) {
    const t = performance.now();
    await query(ids[i % ids.length]!).catch(() => undefined);
    latencies.push(performance.now() - t);
    await sleep(100);
  }
  return latencies;
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Until every one of `ids` has been handed to the provider (so it sits there, waiting). */
async function waitAtProvider(db: SystemDb, ids: string[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await withSystemTx(db, (tx) =>
      tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM generations WHERE id = ANY($1) AND provider_request_id IS NULL`,
        [ids],
      ),
    );
    if (rows[0]!.n === 0) return;
    if (Date.now() > until)
      throw new Error(`${rows[0]!.n} generations not at the provider after ${timeoutMs} ms`);
    await sleep(200);
  }
}
