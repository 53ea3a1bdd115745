// Development only: running the cluster's Go tools (go, temporal-sql-tool) with a time limit.
import { execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

export interface ExecOptions {
  timeoutMs: number;
  /** For error messages; defaults to "<cmd> <first arg>". */
  label?: string;
  cwd?: string;
  env?: Record<string, string>;
}

export function exec(
  cmd: string,
  args: string[],
  opts: ExecOptions,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const options = {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL' as const,
      maxBuffer: 16 << 20,
    };
    execFile(cmd, args, options, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const why = err.killed
        ? `timed out after ${opts.timeoutMs / 1000} s`
        : lastLines(stderr) || err.message;
      reject(new Error(`${opts.label ?? `${path.basename(cmd)} ${args[0] ?? ''}`}: ${why}`));
    });
  });
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    if (!(await stat(file)).isFile()) return false;
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: string; message?: string } | undefined;
  const detail = cause?.code ?? cause?.message;
  return detail ? `${err.message} (${detail})` : err.message;
}

function lastLines(text: string, count = 3): string {
  return text.trim().split('\n').slice(-count).join(' | ');
}
