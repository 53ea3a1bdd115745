// `npm run cluster`: the production topology on one machine, one log stream: Postgres, temporal-server
// on it, the Temporal UI, two APIs behind one port, two workers. The code is lib/dev/cluster.ts.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { loadConfig } from '../lib/config';
import { startCluster } from '../lib/dev/cluster';
import { ensureDemoUser } from '../lib/dev/demo-user';
import { formatLogLine } from '../lib/dev/log-format';
import { createSystemDb } from '../lib/wiring/from-config';

/** Turned on for the cluster's APIs and workers, as `npm start` does, unless set in the environment. */
const DEV_RELAXATIONS = [
  'WEBHOOK_ALLOW_PRIVATE_URLS',
  'WEBHOOK_ALLOW_HTTP',
  'PROVIDER_OUTPUT_ALLOW_LOOPBACK',
];

const print = (component: string, line: string) =>
  process.stdout.write(`${formatLogLine(component, line)}\n`);

/** argv flag of the process that runs the cluster (see supervise). */
const IN_OWN_GROUP = '--in-own-process-group';

/**
 * Ctrl-C sends SIGINT to every process of the terminal's foreground group: Postgres would stop at
 * once, under the workers still draining. So the cluster runs in a process group of its own, and
 * this process forwards the first Ctrl-C to it, which stops its pieces in order. Through the IPC
 * channel the cluster also notices when this process is gone (e.g. its terminal closed), and stops.
 */
function supervise() {
  const child = spawn(process.execPath, ['--import', 'tsx', __filename, IN_OWN_GROUP], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let forwardedAt: number | undefined;
  const forward = () => {
    if (forwardedAt === undefined) {
      forwardedAt = Date.now();
      child.kill('SIGINT');
    } else if (Date.now() - forwardedAt > 1_000) {
      // (A Ctrl-C arrives twice at once: from the terminal and relayed by tsx.)
      print('cluster', 'still stopping (children first, then Temporal, then Postgres) …');
    }
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.once('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

async function main() {
  const started = Date.now();
  const config = loadConfig();
  const dataDir = path.resolve(config.CLUSTER_DATA_DIR);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of DEV_RELAXATIONS) if (!env[name]?.trim()) env[name] = 'true';

  // Ctrl-C while starting: exit at once; the exit handlers kill what was started already.
  const abortStart = () => {
    print('cluster', 'interrupted while starting: killing what was started');
    process.exit(130);
  };
  process.on('SIGINT', abortStart);
  process.on('SIGTERM', abortStart);
  process.on('disconnect', abortStart);
  const cluster = await startCluster({
    dataDir,
    databaseUrl: config.DATABASE_URL,
    port: config.CLUSTER_PORT,
    wellKnownPorts: true,
    uiPort: config.TEMPORAL_UI_PORT,
    namespace: config.TEMPORAL_NAMESPACE,
    signupCredits: config.SIGNUP_CREDITS,
    env,
    log: print,
  });

  process.off('SIGINT', abortStart);
  process.off('SIGTERM', abortStart);
  process.off('disconnect', abortStart);
  let stopping = false;
  const shutdown = async (reason: string) => {
    if (stopping) return;
    stopping = true;
    print('cluster', `${reason}: stopping`);
    await cluster.stop();
    print('cluster', 'stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('disconnect', () => void shutdown('the launching process is gone'));

  const db = createSystemDb(config, cluster.systemDatabaseUrl, 'velro-cluster-launcher');
  const demo = await ensureDemoUser(db, dataDir);
  await db.end();

  const banner = [
    '',
    `Velro cluster is running (up in ${((Date.now() - started) / 1000).toFixed(1)} s).`,
    `  API (round robin)  ${cluster.url}  → ${cluster.apis.map((a) => a.url).join(', ')}`,
    `  Workers            ${cluster.workers.length} (${cluster.workers.map((w) => `pid ${w.pid()}`).join(', ')})`,
    `  Temporal           ${cluster.temporalAddress} (namespace ${cluster.namespace}, Postgres, SQL visibility)`,
    `  Temporal UI        ${cluster.temporalUiUrl ?? '(not running: see the log above)'}`,
    `  Data               ${dataDir}`,
    `  Demo key           ${demo.apiKey}`,
    '',
    `  curl -H "Authorization: Bearer ${demo.apiKey}" ${cluster.url}/v1/credits`,
    '',
    'Ctrl-C stops everything; the next start reuses the data.',
    '',
  ];
  process.stdout.write(`${banner.join('\n')}\n`);
}

if (process.argv.includes(IN_OWN_GROUP)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
} else {
  supervise();
}
