// Development only: Temporal's own login and databases on the cluster's Postgres, their schemas applied
// with temporal-sql-tool (idempotent: a restart only updates what is already there).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { exec } from './cluster-exec';
import type { TemporalServerInstall } from './server-binary';

export const TEMPORAL_LOGIN = 'temporal';
export const TEMPORAL_DATABASES = { temporal: 'temporal', visibility: 'temporal_visibility' } as const;

export interface TemporalDbLogin {
  host: string;
  port: number;
  user: string;
  password: string;
}

/**
 * The `temporal` login (LOGIN CREATEDB, nothing else), its password made once and kept in
 * `<dataDir>/temporal-login.json` (0600). `adminUrl` must be able to create roles.
 */
export async function ensureTemporalLogin(adminUrl: string, dataDir: string): Promise<TemporalDbLogin> {
  const file = path.join(dataDir, 'temporal-login.json');
  const kept = await fs.readFile(file, 'utf8').then(
    (t) => (JSON.parse(t) as { password?: string }).password,
    () => undefined,
  );
  const password = kept && /^[A-Za-z0-9_-]{32,}$/.test(kept) ? kept : randomBytes(24).toString('base64url');
  if (password !== kept) {
    await fs.mkdir(dataDir, { recursive: true });
    await fs.writeFile(file, `${JSON.stringify({ password }, null, 2)}\n`, { mode: 0o600 });
  }
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await admin.connect();
  try {
    const role = pg.escapeIdentifier(TEMPORAL_LOGIN);
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [TEMPORAL_LOGIN]);
    const verb = exists.rowCount ? 'ALTER' : 'CREATE';
    await admin.query(`${verb} ROLE ${role} LOGIN CREATEDB PASSWORD ${pg.escapeLiteral(password)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  return { host: url.hostname, port: Number(url.port || 5432), user: TEMPORAL_LOGIN, password };
}

/** Creates `temporal` and `temporal_visibility` when absent, then sets up or updates their schemas. */
export async function applyTemporalSchemas(
  install: TemporalServerInstall,
  login: TemporalDbLogin,
  log: (line: string) => void,
): Promise<void> {
  for (const [kind, database] of Object.entries(TEMPORAL_DATABASES)) {
    const tool = (...command: string[]) =>
      exec(
        install.sqlToolBin,
        [
          '--plugin',
          'postgres12',
          '--ep',
          login.host,
          '-p',
          String(login.port),
          '-u',
          login.user,
          '--db',
          database,
          ...command,
        ],
        // The password through the environment, not argv: other local users can read argv.
        {
          timeoutMs: 120_000,
          label: `temporal-sql-tool ${command[0]} (${database})`,
          env: { SQL_PASSWORD: login.password },
        },
      );
    const before = await schemaVersion(login, database);
    if (before === 'no database') {
      await tool('create-database');
      log(`created database ${database}`);
    }
    if (before === 'no database' || before === 'no schema') {
      await tool('setup-schema', '-v', '0.0');
    }
    await tool('update-schema', '-d', path.join(install.schemaDir, kind, 'versioned'));
    const after = await schemaVersion(login, database);
    log(
      before === after
        ? `${database}: schema ${String(after)}, up to date`
        : `${database}: schema ${before} → ${String(after)}`,
    );
  }
}

/** The version temporal-sql-tool recorded, or why there is none. */
async function schemaVersion(login: TemporalDbLogin, database: string): Promise<string> {
  const maintenance = new pg.Client({ ...login, database: 'postgres', connectionTimeoutMillis: 10_000 });
  await maintenance.connect();
  try {
    const found = await maintenance.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!found.rowCount) return 'no database';
  } finally {
    await maintenance.end();
  }
  const client = new pg.Client({ ...login, database, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ curr_version: string }>(
      `SELECT curr_version FROM schema_version WHERE version_partition = 0 AND db_name = $1`,
      [database],
    );
    return rows[0]?.curr_version ?? 'no schema';
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return 'no schema';
    throw err;
  } finally {
    await client.end();
  }
}
