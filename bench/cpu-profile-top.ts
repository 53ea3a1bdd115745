// The top self-time functions of a V8 CPU profile (`node --cpu-prof`), and self time by package.
// `npx tsx bench/cpu-profile-top.ts <file.cpuprofile|dir> [N]` (a folder: its newest profile).
import fs from 'node:fs/promises';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileTop {
  file: string;
  totalMs: number;
  functions: { name: string; where: string; selfMs: number; share: number }[];
  packages: { name: string; selfMs: number; share: number }[];
}

/** The newest .cpuprofile in `dir`. */
export async function newestProfile(dir: string): Promise<string | undefined> {
  const files = (await fs.readdir(dir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile'));
  const stats = await Promise.all(
    files.map(async (f) => ({ f, t: (await fs.stat(path.join(dir, f))).mtimeMs })),
  );
  const newest = stats.sort((a, b) => b.t - a.t)[0];
  return newest && path.join(dir, newest.f);
}

function packageOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return 'node core';
  return 'velro';
}

export async function profileTop(file: string, n = 15): Promise<ProfileTop> {
  const profile = JSON.parse(await fs.readFile(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const functions = new Map<string, { name: string; where: string; selfMs: number }>();
  const packages = new Map<string, number>();
  let totalMs = 0;
  for (const [id, ms] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const name = functionName || '(anonymous)';
    const where = url
      ? `${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/main\//, '')}:${lineNumber + 1}`
      : '';
    const key = `${name}@${where}`;
    const f = functions.get(key) ?? { name, where, selfMs: 0 };
    f.selfMs += ms;
    functions.set(key, f);
    const pkg = packageOf(url, name);
    packages.set(pkg, (packages.get(pkg) ?? 0) + ms);
    totalMs += ms;
  }
  return {
    file,
    totalMs,
    functions: [...functions.values()]
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, n)
      .map((f) => ({ ...f, share: f.selfMs / totalMs })),
    packages: [...packages.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, selfMs]) => ({ name, selfMs, share: selfMs / totalMs })),
  };
}

export function formatTop(top: ProfileTop): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return [
    `CPU profile ${top.file}: ${(top.totalMs / 1000).toFixed(1)} s sampled`,
    '| self time | share | function | where |',
    '| --- | --- | --- | --- |',
    ...top.functions.map((f) => `| ${f.selfMs.toFixed(0)} ms | ${pct(f.share)} | ${f.name} | ${f.where} |`),
    '',
    '| self time | share | package |',
    '| --- | --- | --- |',
    ...top.packages.map((p) => `| ${p.selfMs.toFixed(0)} ms | ${pct(p.share)} | ${p.name} |`),
  ];
}

if (require.main === module) {
  (async () => {
    const arg = process.argv[2] ?? '/tmp/velro-bench/cpu-prof';
    const file = (await fs.stat(arg)).isDirectory() ? await newestProfile(arg) : arg;
    if (!file) throw new Error(`no .cpuprofile in ${arg}`);
    console.log(formatTop(await profileTop(file, Number(process.argv[3] ?? 20))).join('\n'));
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
