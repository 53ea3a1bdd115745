import { execFile } from 'node:child_process';
import path from 'node:path';
import { testStack } from './context';

const ROOT = path.resolve(__dirname, '../..');

export interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one of the project's scripts (`scripts/admin.ts`…) as its own process, with `env` added. */
export function runScript(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<ScriptResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, script), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** `npm run admin -- …` on the test stack, as velro_system. */
export function runAdmin(args: string[], env: Record<string, string> = {}): Promise<ScriptResult> {
  const stack = testStack();
  return runScript('scripts/admin.ts', args, {
    DATABASE_SYSTEM_URL: stack.systemDatabaseUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    ...env,
  });
}
