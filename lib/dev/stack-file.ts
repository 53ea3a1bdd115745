// Development only (lib/dev/): how `npm start` tells other local processes where its stack is.
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Where `npm start` tells other local processes (a second worker, `npm run admin`, ...) how to reach
 * the embedded Postgres and Temporal it started. Production sets DATABASE_APP_URL, DATABASE_SYSTEM_URL
 * and TEMPORAL_ADDRESS.
 */
export interface StackInfo {
  /** The velro_app login (API, worker). */
  appDatabaseUrl: string;
  /** The velro_system login (worker, admin commands, ledger check). The owner URL is not kept here. */
  systemDatabaseUrl: string;
  temporalAddress: string;
  pid: number;
}

const fileOf = (dataDir: string) => path.join(dataDir, 'stack.json');

export async function writeStackInfo(dataDir: string, info: StackInfo): Promise<void> {
  await fs.writeFile(fileOf(dataDir), JSON.stringify(info, null, 2), { mode: 0o600 });
}

export async function removeStackInfo(dataDir: string): Promise<void> {
  await fs.rm(fileOf(dataDir), { force: true });
}

/** The running stack's info, if its launcher is still alive. */
export function readStackInfo(dataDir: string): StackInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(fileOf(dataDir), 'utf8')) as StackInfo;
    process.kill(info.pid, 0);
    return info;
  } catch {
    return undefined;
  }
}
