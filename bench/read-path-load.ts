// HTTP load from autocannon, run as its own process (its client work stays off the machine's other
// event loops), with the API process's CPU measured over the same wall time.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../lib/paths';
import { startCpuMeter, type CpuSources } from './read-path-api';

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Answers other than 2xx, and connection errors or timeouts: a valid figure has none. */
  non2xx: number;
  errors: number;
  /** CPU % (100 = one core) of each source given, over the run. */
  cpuPercent: Record<string, number>;
}

/** The part of autocannon's --json output read here. */
interface AutocannonJson {
  duration: number;
  latency: { p50: number; p99: number };
  requests: { total: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

const AUTOCANNON = path.join(PROJECT_ROOT, 'node_modules', 'autocannon', 'autocannon.js');

export async function runLoad(opts: {
  url: string;
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
  cpu: CpuSources;
}): Promise<LoadResult> {
  const args = [AUTOCANNON, '--json', '-c', String(opts.connections), '-d', String(opts.seconds)];
  for (const [name, value] of Object.entries(opts.headers ?? {})) args.push('-H', `${name}=${value}`);
  args.push(opts.url);
  const stopMeter = startCpuMeter(opts.cpu);
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 }, (err, out, errOut) =>
      err ? reject(new Error(`autocannon failed: ${err.message}\n${errOut}`)) : resolve(out),
    ),
  );
  const cpuPercent = stopMeter();
  const r = JSON.parse(stdout) as AutocannonJson;
  return {
    requestsPerSecond: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    cpuPercent,
  };
}
