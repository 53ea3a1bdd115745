// Development only (lib/dev/): the production topology on one machine for `npm run cluster` and the
// cluster tests: Postgres, temporal-server on it (SQL visibility), the Temporal UI, N API processes
// behind one round-robin port, N workers. Every piece can be stopped, killed and started again.
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { provisionLogins } from '../db/logins';
import { ensureDatabase, migrate } from '../db/migrate';
import { freePort } from '../net/free-port';
import { writeServerConfig, type ServerPorts } from '../temporal/cluster-config';
import { managedProcess, type ManagedProcess } from './managed-process';
import { applyTemporalSchemas, ensureTemporalLogin } from '../temporal/cluster-schema';
import { ensureNamespace, temporalServerProcess } from '../temporal/cluster-server';
import { ensureUiServer, uiServerProcess, untilHttpOk } from '../temporal/cluster-ui';
import { ensureTemporalServer } from '../temporal/server-binary';
import { startEmbeddedPostgres, type RunningPostgres } from './embedded-postgres';
import { startRoundRobinProxy, type RoundRobinProxy } from './round-robin-proxy';

const ROOT = path.resolve(__dirname, '..', '..');
/** Apart from `npm start`'s (54329, 7233, 8233), so both can run side by side. */
const PREFERRED_PORTS = { postgres: 54339, temporal: 7233, ui: 8233 };
/** Postgres lines that are part of normal operation: a stop closing sessions, the first login check. */
const EXPECTED_POSTGRES_NOISE =
  /terminating connection due to administrator command|password authentication failed for user "velro_(app|system)"/;

export type ClusterComponent =
  'postgres' | 'temporal' | 'ui' | 'proxy' | 'cluster' | `api-${number}` | `worker-${number}`;

export interface ClusterOptions {
  /** Everything the cluster keeps between runs: Postgres, logins, the API's data (VELRO_DATA_DIR). */
  dataDir: string;
  /** Use this Postgres (its owner login) instead of the embedded one. */
  databaseUrl?: string;
  /** The proxy's port (0: any free one). */
  port: number;
  apis?: number; // default 2
  workers?: number; // default 2
  namespace?: string; // default 'default'
  /** Temporal Web UI port; false for none. Default: 8233 when free. */
  uiPort?: number | false;
  /** Prefer the well-known ports (Postgres 54339, Temporal 7233) when free; tests take any free port. */
  wellKnownPorts?: boolean;
  /** The environment the APIs and workers start from (default process.env); the database URLs are replaced. */
  env?: NodeJS.ProcessEnv;
  signupCredits?: number;
  postgresSettings?: Record<string, string>;
  log: (component: ClusterComponent, line: string) => void;
}

export interface ApiReplica extends ManagedProcess {
  url: string;
}

export interface WorkerReplica extends ManagedProcess {
  /** Where this worker's /metrics listens (WORKER_METRICS_PORT). */
  metricsUrl: string;
}

export interface RestartablePostgres {
  running(): boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export interface Cluster {
  /** The one port in front of the APIs. */
  url: string;
  /** Owner login: migrations only. */
  databaseUrl: string;
  appDatabaseUrl: string;
  systemDatabaseUrl: string;
  temporalAddress: string;
  temporalUiUrl?: string;
  namespace: string;
  /** The embedded Postgres (undefined when DATABASE_URL was given). */
  postgres?: RestartablePostgres;
  temporal: ManagedProcess;
  ui?: ManagedProcess;
  apis: ApiReplica[];
  workers: WorkerReplica[];
  /** Children first, then the proxy, the UI, Temporal and Postgres. */
  stop(): Promise<void>;
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const log = opts.log;
  const namespace = opts.namespace ?? 'default';
  const dataDir = path.resolve(opts.dataDir);
  await fs.mkdir(dataDir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse())
      await stop().catch((err) => log('cluster', `stop: ${String(err)}`));
  };
  const pick = (preferred: number) => (opts.wellKnownPorts ? portOr(preferred) : freePort());
  const onUnexpectedExit = (name: string, how: string) =>
    log('cluster', `${name} exited unexpectedly (${how})`);

  try {
    // Postgres, Velro's migrations and logins.
    let adminUrl = opts.databaseUrl;
    let postgres: RestartablePostgres | undefined;
    if (!adminUrl) {
      const pgPort = await pick(PREFERRED_PORTS.postgres);
      const pgDir = path.join(dataDir, 'postgres');
      log('cluster', `starting embedded Postgres on 127.0.0.1:${pgPort} (data: ${pgDir})`);
      let running: RunningPostgres | undefined;
      postgres = {
        running: () => !!running,
        start: async () => {
          running ??= await startEmbeddedPostgres({
            dataDir: pgDir,
            port: pgPort,
            settings: { max_connections: '300', ...opts.postgresSettings },
            onLog: (line) => {
              if (/ERROR|FATAL|PANIC/.test(line) && !EXPECTED_POSTGRES_NOISE.test(line))
                log('postgres', line);
            },
          });
        },
        stop: async () => {
          const r = running;
          running = undefined;
          // embedded-postgres waits for an exit that never comes if the server died on its own.
          if (r) await Promise.race([r.stop(), sleep(30_000, undefined, { ref: false })]);
        },
        restart: async () => {
          await postgres!.stop();
          await postgres!.start();
        },
      };
      await postgres.start();
      stops.push(postgres.stop);
      adminUrl = `postgres://postgres:velro-embedded@127.0.0.1:${pgPort}/postgres`;
    }
    const databaseUrl = opts.databaseUrl ?? (await ensureDatabase(adminUrl, 'velro'));
    for (const name of await migrate(databaseUrl)) log('cluster', `applied migration ${name}`);
    const logins = await provisionLogins(databaseUrl, { dataDir, signupCredits: opts.signupCredits });

    // temporal-server on the same Postgres, under its own login and databases.
    const install = await ensureTemporalServer((m) => log('cluster', m));
    const temporalLogin = await ensureTemporalLogin(adminUrl, dataDir);
    await applyTemporalSchemas(install, temporalLogin, (m) => log('cluster', m));
    const ports = await serverPorts(!!opts.wellKnownPorts);
    const configFile = await writeServerConfig(install, path.join(dataDir, 'temporal'), temporalLogin, ports);
    const temporalAddress = `127.0.0.1:${ports.frontendGrpc}`;
    let temporalServing = false;
    const temporal = temporalServerProcess({
      serverBin: install.serverBin,
      configFile,
      address: temporalAddress,
      // Its start is noisy (services looking for each other): the lines go to the error if it fails.
      log: (_name, line) => temporalServing && log('temporal', withoutStackTrace(line)),
      onUnexpectedExit,
    });
    log('cluster', `starting temporal-server on ${temporalAddress}`);
    const temporalStarted = Date.now();
    await temporal.start();
    temporalServing = true;
    stops.push(temporal.stop);
    log('cluster', `temporal-server ready in ${((Date.now() - temporalStarted) / 1000).toFixed(1)} s`);
    await ensureNamespace(temporalAddress, namespace, (m) => log('cluster', m));

    let ui: ManagedProcess | undefined;
    let temporalUiUrl: string | undefined;
    if (opts.uiPort !== false) {
      try {
        const uiPort = await portOr(opts.uiPort ?? PREFERRED_PORTS.ui);
        ui = await uiServerProcess({
          bin: await ensureUiServer((m) => log('cluster', m)),
          dir: path.join(dataDir, 'ui'),
          temporalAddress,
          port: uiPort,
          namespace,
          log: (_name, line) => log('ui', line),
          onUnexpectedExit,
        });
        await ui.start();
        stops.push(ui.stop);
        temporalUiUrl = `http://127.0.0.1:${uiPort}`;
      } catch (err) {
        // The UI is a convenience: the cluster works without it.
        log('cluster', `no Temporal UI: ${err instanceof Error ? err.message : String(err)}`);
        ui = undefined;
      }
    }

    // The replicas: only their own logins, never the owner's (migrated above, once).
    const {
      DATABASE_URL: _o,
      DATABASE_APP_URL: _a,
      DATABASE_SYSTEM_URL: _s,
      ...base
    } = opts.env ?? process.env;
    const common: NodeJS.ProcessEnv = {
      ...base,
      DATABASE_APP_URL: logins.appDatabaseUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: namespace,
      VELRO_DATA_DIR: dataDir,
    };
    const workers: WorkerReplica[] = [];
    for (let i = 1; i <= (opts.workers ?? 2); i++) {
      const metricsPort = await freePort();
      const name = `worker-${i}` as const;
      const started = lineWatcher('"worker started"');
      const worker = nodeChild(name, 'worker/main.ts', {
        env: {
          ...common,
          DATABASE_SYSTEM_URL: logins.systemDatabaseUrl,
          WORKER_METRICS_PORT: String(metricsPort),
        },
        log: (line) => {
          started.see(line);
          log(name, line);
        },
        ready: () => started.wait(120_000, name),
        onUnexpectedExit,
      });
      workers.push(Object.assign(worker, { metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` }));
    }
    // The proxy first (its replicas are not up yet): the APIs must know the public URL it gives them.
    const apiPorts: number[] = [];
    for (let i = 0; i < (opts.apis ?? 2); i++) apiPorts.push(await freePort());
    const proxy: RoundRobinProxy = await startRoundRobinProxy({
      upstreams: apiPorts.map((port) => ({ host: '127.0.0.1', port })),
      port: opts.port,
      log: (line) => log('proxy', line),
    });
    stops.push(proxy.close);
    const publicUrl = base.VELRO_PUBLIC_URL?.trim() || `http://localhost:${proxy.port}`;
    const apis: ApiReplica[] = apiPorts.map((port, i) => {
      const url = `http://127.0.0.1:${port}`;
      const name = `api-${i + 1}` as const;
      const api = nodeChild(name, 'api/server.ts', {
        env: {
          ...common,
          PORT: String(port),
          HOST: '127.0.0.1',
          TRUST_PROXY: '1',
          VELRO_PUBLIC_URL: publicUrl,
        },
        log: (line) => log(name, line),
        ready: () => untilHttpOk(`${url}/health`, 120_000),
        onUnexpectedExit,
      });
      return Object.assign(api, { url });
    });
    // Stopped before the proxy closes: in-flight requests finish through it.
    const children = [...workers, ...apis];
    stops.push(() => Promise.all(children.map((c) => c.stop())).then(() => undefined));
    await Promise.all(children.map((c) => c.start()));

    return {
      url: proxy.url,
      databaseUrl,
      ...logins,
      temporalAddress,
      temporalUiUrl,
      namespace,
      postgres,
      temporal,
      ui,
      apis,
      workers,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function nodeChild(
  name: string,
  entry: string,
  o: {
    env: NodeJS.ProcessEnv;
    log: (line: string) => void;
    ready: () => Promise<void>;
    onUnexpectedExit: (name: string, how: string) => void;
  },
): ManagedProcess {
  return managedProcess({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', path.join(ROOT, entry)],
    cwd: ROOT,
    env: o.env,
    log: (_n, line) => o.log(line),
    ready: o.ready,
    onUnexpectedExit: o.onUnexpectedExit,
  });
}

/** Resolves `wait()` once a line containing `needle` is seen (again after each wait, for restarts). */
function lineWatcher(needle: string) {
  let resolve: (() => void) | undefined;
  return {
    see(line: string) {
      if (line.includes(needle)) resolve?.();
    },
    wait(timeoutMs: number, name: string): Promise<void> {
      return new Promise((res, rej) => {
        const timer = setTimeout(
          () => rej(new Error(`${name} did not start within ${timeoutMs / 1000} s`)),
          timeoutMs,
        );
        resolve = () => {
          clearTimeout(timer);
          resolve = undefined;
          res();
        };
      });
    },
  };
}

/**
 * temporal-server's ports, all below 32768: it keeps its membership ports in a smallint column
 * (cluster_membership.rpc_port), so the OS's ephemeral ports fail at start. The template's
 * well-known ports when free, else random free ones from 20000–32767.
 */
async function serverPorts(wellKnown: boolean): Promise<ServerPorts> {
  const taken = new Set<number>();
  const low = async (preferred: number) => {
    for (let i = 0; i < 200; i++) {
      const port = i === 0 && wellKnown ? preferred : 20_000 + Math.floor(Math.random() * 12_768);
      if (!taken.has(port) && (await isFree(port))) {
        taken.add(port);
        return port;
      }
    }
    throw new Error('found no free port below 32768 for temporal-server');
  };
  return {
    frontendGrpc: await low(PREFERRED_PORTS.temporal),
    frontendHttp: await low(7243),
    frontendMembership: await low(6933),
    history: await low(7234),
    historyMembership: await low(6934),
    matching: await low(7235),
    matchingMembership: await low(6935),
    worker: await low(7239),
    workerMembership: await low(6939),
    metrics: await low(8000),
  };
}

/** The preferred port when it is free, else any free one. */
async function portOr(preferred: number): Promise<number> {
  return (await isFree(preferred)) ? preferred : freePort();
}

function isFree(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const srv = net.createServer().once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** temporal-server's JSON log line without its multi-kilobyte Go stack trace. */
function withoutStackTrace(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const { stacktrace: _s, 'logging-call-at': _at, ...rest } = JSON.parse(line) as Record<string, unknown>;
    return JSON.stringify(rest);
  } catch {
    return line;
  }
}
