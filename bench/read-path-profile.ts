// Self time of a V8 .cpuprofile (node --cpu-prof), by function and by package or project folder.
import fs from 'node:fs/promises';
import path from 'node:path';
import { PROJECT_ROOT } from '../lib/paths';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  functions: SelfTime[];
  places: SelfTime[];
}

/** node_modules/<package>, node:internal, a project folder (api/, lib/db/, ...), or a V8 pseudo-frame. */
function placeOf(url: string, functionName: string): string {
  if (!url) return `(${functionName.replace(/[()]/g, '') || 'native'})`;
  if (url.startsWith('node:')) return 'node: (core)';
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = file.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const rel = path.relative(PROJECT_ROOT, file);
  return rel.startsWith('..') ? file : path.dirname(rel);
}

const shortUrl = (url: string) => {
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  return nm >= 0 ? file.slice(nm + 'node_modules/'.length) : path.relative(PROJECT_ROOT, file) || url;
};

/**
 * Summarises the busiest .cpuprofile in `dir` (there is one per thread, and tsx's module loader runs
 * in a thread of its own; the main thread's is the busiest): the `top` functions and places by self
 * time, idle left out, from `sinceUs` (monotonicUs) on.
 */
export async function summariseProfile(
  dir: string,
  opts: { top?: number; sinceUs?: number } = {},
): Promise<ProfileSummary> {
  const files = (await fs.readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const summaries = await Promise.all(
    files.map(async (f) => {
      const file = path.join(dir, f);
      const profile = JSON.parse(await fs.readFile(file, 'utf8')) as CpuProfile;
      return summarise(file, profile, opts.top ?? 12, opts.sinceUs ?? 0);
    }),
  );
  summaries.sort((a, b) => b.totalMs - a.totalMs);
  if (!summaries[0]) throw new Error(`no .cpuprofile in ${dir}`);
  return summaries[0];
}

/** Monotonic clock in µs: V8 stamps profile samples with CLOCK_MONOTONIC too, in any process. */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

function summarise(file: string, profile: CpuProfile, top: number, sinceUs: number): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fnMs = new Map<string, number>();
  const placeMs = new Map<string, number>();
  let totalMs = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at < sinceUs) return; // start-up and warm-up
    const ms = delta / 1000;
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') return; // waiting for I/O: not CPU
    const name = frame.url
      ? `${frame.functionName || '(anonymous)'} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
      : frame.functionName;
    fnMs.set(name, (fnMs.get(name) ?? 0) + ms);
    const place = placeOf(frame.url, frame.functionName);
    placeMs.set(place, (placeMs.get(place) ?? 0) + ms);
    totalMs += ms;
  });
  const ranked = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({ name, ms, percent: (ms / totalMs) * 100 }));
  return { file, totalMs, functions: ranked(fnMs), places: ranked(placeMs) };
}
