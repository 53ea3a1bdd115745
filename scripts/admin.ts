// `npm run admin -- <command> [options]`: operator commands that act across users, as velro_system.
// Logs in as velro_system through DATABASE_SYSTEM_URL, else the running `npm start` stack on VELRO_DATA_DIR.
//
// Exit codes: 0 done · 1 refused (unknown user or team, ledger refusal) or failed · 2 cannot connect ·
// 64 bad usage (unknown command or option, bad amount, bad date).
import { randomUUID } from 'node:crypto';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Role } from '../lib/auth/jwt';
import { setUserRole } from '../lib/users/store';
import { loadConfig } from '../lib/config';
import { withSystemTx, type SystemDb } from '../lib/db/pool';
import { LedgerError } from '../lib/ledger/errors';
import * as ledger from '../lib/ledger/ledger';
import { resolveEndpoints } from '../lib/wiring/endpoints';
import { createSystemDb } from '../lib/wiring/from-config';

const EXIT = { ok: 0, refused: 1, unreachable: 2, usage: 64 } as const;

/** A failure with the exit code it maps to and a message for the operator. */
class CommandError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}
const usageError = (message: string) => new CommandError(EXIT.usage, message);

interface Command {
  usage: string;
  summary: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Checks the parsed options and returns the work to do against the database. */
  prepare(values: Record<string, unknown>): (db: SystemDb) => Promise<string>;
}

const MAX_GRANT = 1_000_000_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const grant: Command = {
  usage:
    'grant (--email <email> | --team <team id>) --credits <n> [--reason <text>] [--expires <ISO-8601>] [--id <uuid>]',
  summary: "grant credits to a user, or into a team's account; prints the new balance",
  options: {
    email: { type: 'string' },
    team: { type: 'string' },
    credits: { type: 'string' },
    reason: { type: 'string' },
    expires: { type: 'string' },
    id: { type: 'string' },
  },
  prepare(v) {
    const email = typeof v.email === 'string' ? v.email.trim() : '';
    const teamId = typeof v.team === 'string' ? v.team.trim() : '';
    if (!email && !teamId) throw usageError('--email is required (or --team for a team)');
    if (email && teamId) throw usageError('give --email or --team, not both');
    if (teamId && !UUID.test(teamId)) throw usageError(`--team must be a team id (a UUID), got "${teamId}"`);
    const creditsText = typeof v.credits === 'string' ? v.credits.trim() : '';
    if (!/^\d+$/.test(creditsText) || Number(creditsText) < 1 || Number(creditsText) > MAX_GRANT) {
      throw usageError(`--credits must be a whole number from 1 to ${MAX_GRANT}, got "${v.credits ?? ''}"`);
    }
    const amount = Number(creditsText);
    const reason = typeof v.reason === 'string' ? v.reason.trim() : 'admin grant';
    if (reason.length < 1 || reason.length > 500) throw usageError('--reason must be 1 to 500 characters');
    let expiresAt: Date | null = null;
    if (v.expires !== undefined) {
      const text = String(v.expires);
      // An ISO 8601 date-time with an explicit zone, e.g. 2030-01-31T00:00:00Z or ...+02:00.
      const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;
      const [y, m, d] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
      const calendarDay = new Date(Date.UTC(y, m - 1, d)).getUTCDate() === d; // Date rolls Feb 30 into March
      expiresAt = new Date(text);
      if (!iso.test(text) || !calendarDay || Number.isNaN(expiresAt.getTime())) {
        throw usageError(
          `--expires must be an ISO 8601 date-time with a zone (e.g. 2030-01-31T00:00:00Z), got "${text}"`,
        );
      }
      if (expiresAt.getTime() <= Date.now()) throw usageError(`--expires must be in the future, got ${text}`);
    }
    const id = typeof v.id === 'string' ? v.id : randomUUID();
    if (!UUID.test(id)) throw usageError('--id must be a UUID');

    if (teamId)
      return (db) =>
        withSystemTx(db, async (tx) => {
          let t: ledger.Transfer;
          try {
            // ledger_grant_team also writes the team's audit event (credits.granted, no actor: an operator).
            t = await ledger.grant(tx, { id, teamId, amount, reason, expiresAt });
          } catch (err) {
            if (err instanceof LedgerError && err.code === 'not_found')
              throw new CommandError(EXIT.refused, `no team ${teamId} (unknown or deleted)`);
            throw err;
          }
          const b = await ledger.teamBalance(tx, teamId);
          const expiry = t.expiresAt ? `, expiring ${t.expiresAt.toISOString()}` : '';
          return (
            `granted ${t.amount} credits to team ${teamId} (transfer ${t.id}${expiry})\n` +
            `balance: available ${b.available}, reserved ${b.reserved}, spent ${b.spent}`
          );
        });
    return (db) =>
      withSystemTx(db, async (tx) => {
        const { rows } = await tx.query<{ id: string }>('SELECT id FROM find_user_by_email($1)', [email]);
        const userId = rows[0]?.id;
        if (!userId) throw new CommandError(EXIT.refused, `no user with email ${email}`);
        const t = await ledger.grant(tx, { id, userId, amount, reason, expiresAt });
        const b = await ledger.balance(tx, userId);
        const expiry = t.expiresAt ? `, expiring ${t.expiresAt.toISOString()}` : '';
        return (
          `granted ${t.amount} credits to ${email} (transfer ${t.id}${expiry})\n` +
          `balance: available ${b.available}, reserved ${b.reserved}, spent ${b.spent}`
        );
      });
  },
};

/** `promote` / `demote`: sets a user's role; takes effect on the user's next request. */
function roleCommand(role: Role, summary: string): Command {
  return {
    usage: `${role === 'admin' ? 'promote' : 'demote'} --email <email>`,
    summary,
    options: { email: { type: 'string' } },
    prepare(v) {
      const email = typeof v.email === 'string' ? v.email.trim() : '';
      if (!email) throw usageError('--email is required');
      return async (db) => {
        const change = await setUserRole(db, email, role);
        if (!change) throw new CommandError(EXIT.refused, `no user with email ${email}`);
        return `${change.email} is now ${change.role} (was ${change.previousRole})`;
      };
    },
  };
}

/** Every subcommand; add one here and it is parsed, documented and run alike. */
const COMMANDS: Record<string, Command> = {
  grant,
  promote: roleCommand('admin', 'make a user an admin (POST /v1/admin/*)'),
  demote: roleCommand('user', 'make an admin a plain user again'),
};

function help(): string {
  const lines = Object.values(COMMANDS).map((c) => `  npm run admin -- ${c.usage}\n      ${c.summary}`);
  return `usage:\n${lines.join('\n')}\n\nDATABASE_SYSTEM_URL, or a running \`npm start\` stack on VELRO_DATA_DIR (.data).`;
}

/** DATABASE_SYSTEM_URL if set (admin commands need no Temporal), else that of the running `npm start` stack. */
function databaseUrl(): string {
  return resolveEndpoints(loadConfig(), { system: true }).systemDatabaseUrl;
}

async function run(argv: string[]): Promise<string> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    if (!name) throw usageError(help());
    return help();
  }
  const command = COMMANDS[name];
  if (!command) throw usageError(`unknown command "${name}"\n${help()}`);
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: rest, options: command.options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw usageError(
      `${err instanceof Error ? err.message : String(err)}\nusage: npm run admin -- ${command.usage}`,
    );
  }
  const work = command.prepare(values);

  let db: SystemDb | undefined;
  try {
    db = createSystemDb({ ...loadConfig(), DATABASE_POOL_MAX: 1 }, databaseUrl(), 'velro-admin');
    await db.query('SELECT 1');
  } catch (err) {
    await db?.end().catch(() => undefined);
    throw new CommandError(
      EXIT.unreachable,
      `cannot connect to the database: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  try {
    return await work(db);
  } catch (err) {
    if (err instanceof LedgerError)
      throw new CommandError(EXIT.refused, `refused (${err.code}): ${err.message}`);
    throw err;
  } finally {
    await db.end();
  }
}

run(process.argv.slice(2)).then(
  (out) => {
    console.log(out);
    process.exit(EXIT.ok);
  },
  (err: unknown) => {
    if (err instanceof CommandError) {
      console.error(`admin: ${err.message}`);
      process.exit(err.exitCode);
    }
    console.error(`admin: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(EXIT.refused);
  },
);
