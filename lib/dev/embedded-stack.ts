// Development only (lib/dev/): Postgres and Temporal on one machine for `npm start`, the tests and the bench.
import path from 'node:path';
import { provisionLogins } from '../db/logins';
import { ensureDatabase, migrate } from '../db/migrate';
import { freePort } from '../net/free-port';
import { ensureTemporalCli } from '../temporal/cli';
import { startTemporalDevServer, VELRO_SEARCH_ATTRIBUTES } from '../temporal/dev-server';
import { startEmbeddedPostgres } from './embedded-postgres';

export interface StackOptions {
  dataDir: string;
  /** Use this Postgres instead of starting the embedded one (DATABASE_URL). */
  databaseUrl?: string;
  /** Use this Temporal instead of starting the dev server (TEMPORAL_ADDRESS). */
  temporalAddress?: string;
  namespace?: string;
  /** Temporal Web UI port, or false for none. */
  uiPort?: number | false;
  /** Use the well-known ports (54329, 7233) when free; tests take any free port instead. */
  wellKnownPorts?: boolean;
  /** SIGNUP_CREDITS, written where register_user reads it (velro_settings). */
  signupCredits?: number;
  /** Postgres settings for the embedded server (tests turn durability off for speed). */
  postgresSettings?: Record<string, string>;
  log: (component: 'postgres' | 'temporal' | 'stack', line: string) => void;
}

export interface Stack {
  /** Owner URL: migrations (and provisioning the logins) only. */
  databaseUrl: string;
  /** The velro_app login: the API and worker. */
  appDatabaseUrl: string;
  /** The velro_system login: the worker's system paths, admin commands, ledger check. */
  systemDatabaseUrl: string;
  temporalAddress: string;
  temporalUiUrl?: string;
  stop(): Promise<void>;
}

const EMBEDDED_PG_PORT = 54329;
const TEMPORAL_PORT = 7233;

/**
 * Postgres and Temporal for one machine: each one is used as given, or started embedded with its
 * data under `dataDir` (kept between runs). Migrations are applied either way, then the velro_app and
 * velro_system logins are given passwords (kept in `dataDir`, see lib/db/logins.ts).
 */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    let databaseUrl = opts.databaseUrl;
    if (!databaseUrl) {
      const port = opts.wellKnownPorts ? await portOr(EMBEDDED_PG_PORT) : await freePort();
      opts.log(
        'stack',
        `starting embedded Postgres on 127.0.0.1:${port} (data: ${path.join(opts.dataDir, 'postgres')})`,
      );
      const pg = await startEmbeddedPostgres({
        dataDir: path.join(opts.dataDir, 'postgres'),
        port,
        settings: opts.postgresSettings,
        onLog: (line) => opts.log('postgres', line),
      });
      stops.push(pg.stop);
      databaseUrl = await ensureDatabase(pg.adminUrl, 'velro');
    }
    for (const name of await migrate(databaseUrl)) opts.log('stack', `applied migration ${name}`);
    const logins = await provisionLogins(databaseUrl, {
      dataDir: opts.dataDir,
      signupCredits: opts.signupCredits,
    });

    let temporalAddress = opts.temporalAddress;
    let temporalUiUrl: string | undefined;
    if (!temporalAddress) {
      const cliPath = await ensureTemporalCli((m) => opts.log('stack', m));
      const server = await startTemporalDevServer({
        cliPath,
        dbFile: path.join(opts.dataDir, 'temporal', 'temporal.db'),
        namespace: opts.namespace,
        port: opts.wellKnownPorts ? await portOr(TEMPORAL_PORT) : await freePort(),
        uiPort: typeof opts.uiPort === 'number' ? await portOr(opts.uiPort) : opts.uiPort,
        searchAttributes: VELRO_SEARCH_ATTRIBUTES,
        onLog: (line) => opts.log('temporal', line),
      });
      stops.push(server.stop);
      temporalAddress = server.address;
      temporalUiUrl = server.uiUrl;
    }
    return { databaseUrl, ...logins, temporalAddress, temporalUiUrl, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The preferred port when it is free, else any free one (a second stack on the same machine). */
async function portOr(preferred: number): Promise<number> {
  const net = await import('node:net');
  const free = await new Promise<boolean>((resolve) => {
    const srv = net.createServer().once('error', () => resolve(false));
    srv.listen(preferred, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
  return free ? preferred : freePort();
}
