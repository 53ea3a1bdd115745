import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { migrate } from './migrate';
import type { Db } from './pool';

/**
 * The two database logins besides the owner (db/migrations/008_database_logins.sql): the API and
 * worker log in as velro_app, system paths as velro_system. Their passwords are set here, from the
 * owner connection, never in a migration.
 */
export const APP_LOGIN = 'velro_app';
export const SYSTEM_LOGIN = 'velro_system';
type Login = typeof APP_LOGIN | typeof SYSTEM_LOGIN;

export interface LoginUrls {
  appDatabaseUrl: string;
  systemDatabaseUrl: string;
}

/** The URL of the owner URL's database (same host, port, options) for another login. */
export function loginUrl(ownerUrl: string, login: Login, password: string): string {
  const url = new URL(ownerUrl);
  url.username = login;
  url.password = encodeURIComponent(password);
  return url.toString();
}

const passwordFile = (dataDir: string) => path.join(dataDir, 'db-logins.json');

/** The logins' passwords kept in `dataDir` (mode 0600), made once with crypto.randomBytes. */
async function keptPasswords(dataDir: string): Promise<Record<Login, string>> {
  const file = passwordFile(dataDir);
  const kept = await fs.readFile(file, 'utf8').then(
    (text) => JSON.parse(text) as Partial<Record<Login, string>>,
    () => ({}) as Partial<Record<Login, string>>,
  );
  const valid = (p: unknown): p is string => typeof p === 'string' && /^[A-Za-z0-9_-]{32,}$/.test(p);
  if (valid(kept[APP_LOGIN]) && valid(kept[SYSTEM_LOGIN])) {
    await fs.chmod(file, 0o600);
    return kept as Record<Login, string>;
  }
  const made = {
    [APP_LOGIN]: valid(kept[APP_LOGIN]) ? kept[APP_LOGIN] : randomBytes(24).toString('base64url'),
    [SYSTEM_LOGIN]: valid(kept[SYSTEM_LOGIN]) ? kept[SYSTEM_LOGIN] : randomBytes(24).toString('base64url'),
  };
  await fs.mkdir(dataDir, { recursive: true });
  await fs.writeFile(file, `${JSON.stringify(made, null, 2)}\n`, { mode: 0o600 });
  await fs.chmod(file, 0o600);
  return made;
}

/**
 * Makes sure `url` logs in as `login`: if it cannot (no such password yet, or the role cannot log
 * in), sets the role's password to the URL's through the owner connection (which needs CREATEROLE,
 * or to be a superuser). A login made by hand with the same password is left alone.
 */
async function ensureLogin(owner: pg.Client, url: string, login: Login): Promise<void> {
  const given = decodeURIComponent(new URL(url).username);
  if (given !== login) {
    throw new Error(`the ${login} database URL logs in as "${given}"; it must log in as ${login}`);
  }
  const attempt = async () => {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    await client.connect();
    await client.end();
  };
  try {
    await attempt();
    return;
  } catch (err) {
    // 28P01: wrong password; 28000: cannot log in (e.g. no password yet).
    const code = (err as { code?: string }).code;
    if (code !== '28P01' && code !== '28000') throw err;
  }
  const password = decodeURIComponent(new URL(url).password);
  if (!password) throw new Error(`the ${login} database URL has no password`);
  await owner.query(`ALTER ROLE ${pg.escapeIdentifier(login)} LOGIN PASSWORD ${pg.escapeLiteral(password)}`);
  await attempt();
}

export interface ApplyOptions {
  appDatabaseUrl?: string;
  systemDatabaseUrl?: string;
  /** SIGNUP_CREDITS: written to velro_settings, where register_user reads it (velro_app cannot). */
  signupCredits?: number;
}

/** Through the owner (after migrating): the given logins work, and the settings say `signupCredits`. */
export async function applyLogins(ownerUrl: string, opts: ApplyOptions): Promise<void> {
  const owner = new pg.Client({ connectionString: ownerUrl, connectionTimeoutMillis: 10_000 });
  await owner.connect();
  try {
    if (opts.appDatabaseUrl) await ensureLogin(owner, opts.appDatabaseUrl, APP_LOGIN);
    if (opts.systemDatabaseUrl) await ensureLogin(owner, opts.systemDatabaseUrl, SYSTEM_LOGIN);
    if (opts.signupCredits !== undefined) {
      await owner.query(
        `UPDATE velro_settings SET signup_credits = $1, updated_at = now() WHERE signup_credits <> $1`,
        [opts.signupCredits],
      );
    }
  } finally {
    await owner.end();
  }
}

/**
 * The deploy step, as the owner: applies pending migrations (an advisory lock makes concurrent runs
 * safe), then makes sure the given logins work and the settings say `signupCredits`. Run by
 * `npm run migrate` (once per deploy, before the API and workers), and at start by an API or worker
 * that is given the owner URL (DATABASE_URL).
 */
export async function prepareDatabase(ownerUrl: string, opts: ApplyOptions): Promise<string[]> {
  const applied = await migrate(ownerUrl);
  await applyLogins(ownerUrl, opts);
  return applied;
}

/**
 * For a stack this machine runs (`npm start`, the tests): both logins with passwords generated
 * once and kept in `<dataDir>/db-logins.json` (0600), reused across restarts; returns their URLs.
 */
export async function provisionLogins(
  ownerUrl: string,
  opts: { dataDir: string; signupCredits?: number },
): Promise<LoginUrls> {
  const passwords = await keptPasswords(opts.dataDir);
  const urls = {
    appDatabaseUrl: loginUrl(ownerUrl, APP_LOGIN, passwords[APP_LOGIN]),
    systemDatabaseUrl: loginUrl(ownerUrl, SYSTEM_LOGIN, passwords[SYSTEM_LOGIN]),
  };
  await applyLogins(ownerUrl, { ...urls, signupCredits: opts.signupCredits });
  return urls;
}

/**
 * Refuses to run on a pool that did not log in as `login`, or whose login could step around
 * row-level security (superuser, BYPASSRLS): e.g. the owner URL given as DATABASE_APP_URL.
 */
export async function checkLogin(db: Db, login: Login): Promise<void> {
  const { rows } = await db.query<{ user: string; super: boolean; bypass: boolean }>(
    `SELECT current_user AS user, rolsuper AS super, rolbypassrls AS bypass
     FROM pg_roles WHERE rolname = current_user`,
  );
  const row = rows[0];
  if (!row || row.user !== login || row.super || row.bypass) {
    throw new Error(
      `the ${login === APP_LOGIN ? 'DATABASE_APP_URL' : 'DATABASE_SYSTEM_URL'} login is ` +
        `${row?.user ?? 'unknown'}${row?.super ? ' (superuser)' : ''}${row?.bypass ? ' (BYPASSRLS)' : ''}; ` +
        `it must be ${login}`,
    );
  }
}
