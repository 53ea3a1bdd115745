// Development only: finds or fetches temporal-server and temporal-sql-tool (pinned), their Postgres
// schemas and sample configuration, cached outside the repo like the CLI (lib/temporal/cli.ts).
// `npm run setup:temporal-server` runs it through scripts/temporal-server.ts; `npm run cluster` calls it.
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { cacheDir } from './cli';
import { errorText, exec, isExecutable } from './cluster-exec';

export const TEMPORAL_SERVER_VERSION = '1.32.2';
/** The Go toolchain the issue verified the build with; `go` fetches it through the proxy when older. */
export const GO_TOOLCHAIN = 'go1.26.10';
const MODULE = 'go.temporal.io/server';
const PREFIX = '[temporal-server]';

type Log = (msg: string) => void;

export interface TemporalServerInstall {
  serverBin: string;
  sqlToolBin: string;
  /** Holds `temporal/` and `visibility/`, each with `versioned/`. */
  schemaDir: string;
  /** The module's config/development-postgres12.yaml, the template of the cluster's config. */
  configTemplate: string;
  /** The module's config/dynamicconfig/development-sql.yaml. */
  dynamicConfigTemplate: string;
}

export function serverInstallDir(): string {
  return path.join(cacheDir(), `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

function layout(dir: string): TemporalServerInstall {
  return {
    serverBin: path.join(dir, 'bin', 'temporal-server'),
    sqlToolBin: path.join(dir, 'bin', 'temporal-sql-tool'),
    schemaDir: path.join(dir, 'schema', 'postgresql', 'v12'),
    configTemplate: path.join(dir, 'config', 'development-postgres12.yaml'),
    dynamicConfigTemplate: path.join(dir, 'config', 'dynamicconfig', 'development-sql.yaml'),
  };
}

export async function ensureTemporalServer(
  log: Log = (m) => console.error(m),
): Promise<TemporalServerInstall> {
  const dir = serverInstallDir();
  const install = layout(dir);
  if (!(await isExecutable(install.serverBin)) || !(await isExecutable(install.sqlToolBin))) {
    await mkdir(path.join(dir, 'bin'), { recursive: true });
    await fetchBinaries(dir, log);
  }
  if (!existsSync(install.configTemplate) || !existsSync(path.join(install.schemaDir, 'visibility'))) {
    await copyModuleFiles(dir, log);
  }
  return install;
}

// --- binaries -------------------------------------------------------------

export function releaseArchiveUrl(version = TEMPORAL_SERVER_VERSION): string {
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;
  return `https://github.com/temporalio/temporal/releases/download/v${version}/temporal_${version}_${process.platform}_${arch}.tar.gz`;
}

async function fetchBinaries(dir: string, log: Log): Promise<void> {
  const failures: string[] = [];
  // A work dir on the cache's filesystem keeps the final renames atomic.
  const workDir = await mkdtemp(path.join(dir, '.tmp-'));
  try {
    try {
      log(`${PREFIX} trying the release archive ${releaseArchiveUrl()} …`);
      await downloadAndExtract(releaseArchiveUrl(), workDir);
      await installFrom(
        workDir,
        { 'temporal-server': 'temporal-server', 'temporal-sql-tool': 'temporal-sql-tool' },
        dir,
      );
      log(`${PREFIX} installed from the release archive into ${dir}`);
      return;
    } catch (err) {
      log(
        `${PREFIX} release archive unavailable: ${errorText(err)}; building from the Go module proxy instead`,
      );
      failures.push(`release archive: ${errorText(err)}`);
    }
    try {
      for (const pkg of ['cmd/server', 'cmd/tools/sql']) {
        await goInstall(`${MODULE}/${pkg}@v${TEMPORAL_SERVER_VERSION}`, workDir, log);
      }
      await installFrom(workDir, { server: 'temporal-server', sql: 'temporal-sql-tool' }, dir);
      log(`${PREFIX} installed the Go build into ${dir}`);
      return;
    } catch (err) {
      failures.push(`Go build: ${errorText(err)}`);
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  throw new Error(
    [
      `Could not get temporal-server ${TEMPORAL_SERVER_VERSION}:`,
      ...failures.map((f) => `  - ${f}`),
      `Install it by hand: put temporal-server and temporal-sql-tool ${TEMPORAL_SERVER_VERSION} in ${path.join(dir, 'bin')}`,
      `(from ${releaseArchiveUrl()}, or GOTOOLCHAIN=${GO_TOOLCHAIN} GOBIN=<dir> go install ${MODULE}/cmd/server@v${TEMPORAL_SERVER_VERSION}`,
      ` and …/cmd/tools/sql@v${TEMPORAL_SERVER_VERSION}, renamed to temporal-server and temporal-sql-tool).`,
    ].join('\n'),
  );
}

/** Moves `from → to` names out of `workDir` (searched recursively) into `<dir>/bin`, each checked to run. */
async function installFrom(workDir: string, names: Record<string, string>, dir: string): Promise<void> {
  for (const [from, to] of Object.entries(names)) {
    const found = await findFile(workDir, from);
    if (!found) throw new Error(`no ${from} in the download`);
    await chmod(found, 0o755);
    const { stdout } = await exec(found, ['--version'], { timeoutMs: 30_000 });
    if (!stdout.includes(TEMPORAL_SERVER_VERSION)) throw new Error(`${from} reports "${stdout.trim()}"`);
    await rename(found, path.join(dir, 'bin', to));
  }
}

/** `go install <pkg>` with GOBIN=`binDir`, printing how long it took (minutes on 2 cores). */
export async function goInstall(pkg: string, binDir: string, log: Log, prefix = PREFIX): Promise<void> {
  try {
    await exec('go', ['version'], { timeoutMs: 30_000 });
  } catch (err) {
    throw new Error(`no Go toolchain on PATH (${errorText(err)}); install Go 1.21 or newer (go.dev/dl)`);
  }
  log(`${prefix} go install ${pkg} (GOTOOLCHAIN=${GO_TOOLCHAIN}; several minutes on a small machine) …`);
  const started = Date.now();
  await exec('go', ['install', pkg], {
    timeoutMs: 45 * 60_000,
    label: `go install ${pkg}`,
    env: { GOTOOLCHAIN: GO_TOOLCHAIN, GOBIN: binDir },
  });
  log(`${prefix} built ${pkg} in ${Math.round((Date.now() - started) / 1000)} s`);
}

export async function downloadAndExtract(url: string, workDir: string): Promise<void> {
  const response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  const archive = path.join(workDir, 'archive.tar.gz');
  await pipeline(
    Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
    createWriteStream(archive),
  );
  await exec('tar', ['-xzf', archive, '-C', workDir], { timeoutMs: 120_000 });
  await rm(archive);
}

async function findFile(dir: string, name: string): Promise<string | undefined> {
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name === name) return path.join(entry.parentPath, entry.name);
  }
  return undefined;
}

// --- schema and sample configuration ----------------------------------------

/** The server module's schema/postgresql/v12 and config/, from the Go module cache (downloaded if absent). */
async function copyModuleFiles(dir: string, log: Log): Promise<void> {
  log(`${PREFIX} fetching the schemas and sample configuration of ${MODULE}@v${TEMPORAL_SERVER_VERSION} …`);
  let moduleDir: string;
  try {
    const { stdout } = await exec(
      'go',
      ['mod', 'download', '-json', `${MODULE}@v${TEMPORAL_SERVER_VERSION}`],
      {
        timeoutMs: 10 * 60_000,
        label: 'go mod download',
        env: { GOTOOLCHAIN: GO_TOOLCHAIN },
        cwd: dir,
      },
    );
    moduleDir = (JSON.parse(stdout) as { Dir: string }).Dir;
  } catch (err) {
    throw new Error(
      `Could not get the Temporal schemas (${errorText(err)}). They are in ${MODULE}@v${TEMPORAL_SERVER_VERSION} ` +
        `under schema/postgresql/v12 and config/; copy those into ${dir}.`,
    );
  }
  const workDir = await mkdtemp(path.join(dir, '.tmp-'));
  try {
    await cp(
      path.join(moduleDir, 'schema', 'postgresql', 'v12'),
      path.join(workDir, 'schema', 'postgresql', 'v12'),
      {
        recursive: true,
      },
    );
    await cp(path.join(moduleDir, 'config'), path.join(workDir, 'config'), { recursive: true });
    // The module cache is read-only; the copies must not be, or the next refresh cannot remove them.
    await exec('chmod', ['-R', 'u+w', workDir], { timeoutMs: 30_000 });
    for (const sub of ['schema', 'config']) {
      await rm(path.join(dir, sub), { recursive: true, force: true });
      await rename(path.join(workDir, sub), path.join(dir, sub));
    }
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
