// The bench's child processes (Velro's worker, the baselines' worker, the zero-cost provider): each a
// TypeScript entry point run by this Node with tsx's loader (or compiled JavaScript as it is), ready
// once it prints its line.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from '../lib/paths';

export interface ChildHandle {
  child: ChildProcess;
  /** The first stdout line that matched `readyLine`. */
  ready: Promise<string>;
  /** VmRSS and VmHWM (peak) of the process, in MB (Linux /proc). */
  memory(): Promise<{ rssMb: number; peakMb: number }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startChild(opts: {
  entry: string;
  env: Record<string, string>;
  readyLine: RegExp;
  args?: string[];
  nodeFlags?: string[];
  /** Lines of its stderr/stdout worth showing (errors). */
  onLine?: (line: string) => void;
}): ChildHandle {
  // Compiled output (dist/…/*.js) runs as it is; sources through tsx's loader.
  const loader = opts.entry.endsWith('.js') ? [] : ['--import', 'tsx'];
  const child = spawn(
    process.execPath,
    [...(opts.nodeFlags ?? []), ...loader, path.join(PROJECT_ROOT, opts.entry), ...(opts.args ?? [])],
    { cwd: PROJECT_ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (opts.readyLine.test(line)) resolve(line);
      opts.onLine?.(line);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => opts.onLine?.(line));
    child.once('exit', (code, signal) =>
      reject(new Error(`${opts.entry} exited before it was ready (${code ?? signal})`)),
    );
  });
  ready.catch(() => undefined);
  return {
    child,
    ready,
    async memory() {
      const status = await fs.readFile(`/proc/${child.pid}/status`, 'utf8');
      const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
      return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
