import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DefaultLogger } from '@temporalio/worker';
import type { TestProject } from 'vitest/node' with { 'resolution-mode': 'import' };
import { startStack } from '../../lib/dev/embedded-stack';
import { buildWorkflowBundle } from '../../worker/build-bundle';

export interface TestStack {
  /** The owner: migrations, and tests that need to step outside the roles on purpose. */
  databaseUrl: string;
  /** The velro_app login (the API and worker pools). */
  appDatabaseUrl: string;
  /** The velro_system login (test setup, system paths). */
  systemDatabaseUrl: string;
  temporalAddress: string;
  workflowBundlePath: string;
  dataDir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    stack: TestStack | null;
  }
}

/**
 * Starts a real Postgres and a real Temporal dev server for the whole run (or uses DATABASE_URL and
 * TEMPORAL_ADDRESS when set), and bundles the workflow code once for every test's workers.
 */
export default async function setup(project: TestProject) {
  if (process.env.VELRO_TEST_NO_INFRA === '1') {
    project.provide('stack', null);
    return;
  }
  const started = Date.now();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-test-'));
  await fs.chmod(dataDir, 0o755);
  const stack = await startStack({
    dataDir,
    databaseUrl: process.env.DATABASE_URL || undefined,
    temporalAddress: process.env.TEMPORAL_ADDRESS || undefined,
    uiPort: false,
    // Throwaway data: durability traded for speed.
    // Tests provoke refusals on purpose: only fatal Postgres lines are shown.
    postgresSettings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
    log: (component, line) => {
      if (component === 'stack' || /FATAL|PANIC/.test(line))
        process.stderr.write(`[test ${component}] ${line}\n`);
    },
  });
  const workflowBundlePath = path.join(dataDir, 'workflow-bundle.js');
  await buildWorkflowBundle(workflowBundlePath, new DefaultLogger('WARN'));
  process.stderr.write(`[test stack] Postgres and Temporal ready in ${Date.now() - started} ms\n`);
  project.provide('stack', {
    databaseUrl: stack.databaseUrl,
    appDatabaseUrl: stack.appDatabaseUrl,
    systemDatabaseUrl: stack.systemDatabaseUrl,
    temporalAddress: stack.temporalAddress,
    workflowBundlePath,
    dataDir,
  });

  return async () => {
    await stack.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  };
}
