import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PROJECT_ROOT } from '../../lib/paths';
import { testStack, type ApiHarness } from './context';

/**
 * A real worker process (`npm run worker`'s entry point) on the harness' task queue; `env` is added
 * to (and overrides) the configuration it gets from the harness.
 */
export function startWorkerProcess(
  api: ApiHarness,
  env: Record<string, string> = {},
): { child: ChildProcess; ready: Promise<void> } {
  const stack = testStack();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'worker/main.ts')], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
      WEBHOOK_ALLOW_HTTP: 'true',
      PROVIDER_OUTPUT_ALLOW_LOOPBACK: 'true',
      DATABASE_APP_URL: stack.appDatabaseUrl,
      DATABASE_SYSTEM_URL: stack.systemDatabaseUrl,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_TASK_QUEUE: api.config.TEMPORAL_TASK_QUEUE,
      TEMPORAL_WORKFLOW_BUNDLE: stack.workflowBundlePath,
      VELRO_DATA_DIR: api.config.dataDir,
      LOCAL_PROVIDER_LATENCY_MS: api.config.LOCAL_PROVIDER_LATENCY_MS.toString(),
      LOCAL_PROVIDER_FAILURE_RATE: api.config.LOCAL_PROVIDER_FAILURE_RATE.toString(),
      // Several workers at once on one machine: none binds the metrics port.
      WORKER_METRICS_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('worker started')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`worker exited early (${code ?? signal})`)));
  });
  child.stderr!.resume();
  return { child, ready };
}
