// The API server (`npm run api`'s entry point) in a process of its own, so that its CPU is its own
// (read from /proc) and the load generator's client work is not in its event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../lib/net/free-port';
import { PROJECT_ROOT } from '../lib/paths';

export interface ApiProcess {
  pid: number;
  baseUrl: string;
  /** CPU time (user + system) the process has used so far, in seconds. */
  cpuSeconds(): number;
  /** Why the process has exited by itself (code and the end of its stderr), if it has. */
  exitedEarly(): string | undefined;
  /** SIGTERM (the server closes cleanly, so a --cpu-prof profile is written), then waits for exit. */
  stop(): Promise<void>;
}

// USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux this runs on.
const CLOCK_TICKS_PER_SECOND = 100;

/** utime + stime of a process from /proc/<pid>/stat, in seconds. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

export type CpuSources = Record<string, () => number>;

/**
 * Starts measuring each source's CPU time; the function returned gives each one's CPU % since
 * (100 = one core busy) over the wall time between.
 */
export function startCpuMeter(sources: CpuSources): () => Record<string, number> {
  const t0 = performance.now();
  const at0 = new Map(Object.entries(sources).map(([name, read]) => [name, read()]));
  return () => {
    const wall = (performance.now() - t0) / 1000;
    return Object.fromEntries(
      Object.entries(sources).map(([name, read]) => [name, ((read() - at0.get(name)!) / wall) * 100]),
    );
  };
}

export async function cpuPercentOver(sources: CpuSources, ms: number): Promise<Record<string, number>> {
  const stop = startCpuMeter(sources);
  await new Promise((r) => setTimeout(r, ms));
  return stop();
}

/**
 * Starts api/server.ts (or `opts.script`) with `env` on a free loopback port and waits until
 * /health answers.
 */
export async function startApiProcess(
  env: Record<string, string>,
  opts: { cpuProfDir?: string; logFile?: string; script?: string } = {},
): Promise<ApiProcess> {
  const port = await freePort();
  const nodeArgs = ['--import', 'tsx'];
  if (opts.cpuProfDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`);
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, path.join(PROJECT_ROOT, opts.script ?? 'api/server.ts')],
    {
      cwd: PROJECT_ROOT,
      env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', opts.logFile ? 'pipe' : 'ignore', 'pipe'],
    },
  );
  // Its log (LOG_LEVEL), for when a figure looks wrong.
  if (opts.logFile) child.stdout!.pipe(createWriteStream(opts.logFile, { flags: 'a' }));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const baseUrl = `http://127.0.0.1:${port}`;
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the API process exited (${child.exitCode}): ${stderr}`);
    const ok = await fetch(`${baseUrl}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`the API process did not answer /health within 60 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const pid = child.pid!;
  let lastCpu = 0;
  return {
    pid,
    baseUrl,
    cpuSeconds: () => {
      // Once the process is gone, its last reading stands (and exitedEarly says why).
      if (child.exitCode === null && child.signalCode === null) {
        try {
          lastCpu = cpuSecondsOf(pid);
        } catch {
          // exited between the check and the read
        }
      }
      return lastCpu;
    },
    exitedEarly: () =>
      child.exitCode !== null || child.signalCode !== null
        ? `exit ${child.exitCode ?? child.signalCode}: ${stderr.trim().slice(-1500)}`
        : undefined,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** CPU time the whole machine has spent busy (all cores, everything but idle and iowait), in seconds. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLOCK_TICKS_PER_SECOND;
}

/**
 * CPU time of the processes whose command line names `marker` (the stack's data dir: the Temporal
 * dev server, the Postgres server) and of all their descendants (Postgres backends), in seconds.
 * A process that exits between two reads takes its time with it; pooled backends stay.
 */
export function treeCpuSeconds(marker: string): number {
  const parents = new Map<number, number>();
  const roots: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parents.set(pid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) roots.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid; p && p > 1; p = parents.get(p)) if (roots.includes(p)) return true;
    return false;
  };
  let total = 0;
  for (const pid of parents.keys()) {
    if (!inTree(pid)) continue;
    try {
      total += cpuSecondsOf(pid);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** This process's CPU time (the bench's own worker and clients), in seconds. */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}
