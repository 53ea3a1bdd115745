// `npm run ledger:check`: verifies the credit ledger against its own history.
// Exit 0 when sound, 1 when it found problems, 2 when the database cannot be reached.
import { loadConfig } from '../lib/config';
import { checkLedgerReport } from '../lib/ledger/check';
import { resolveEndpoints } from '../lib/wiring/endpoints';
import { createSystemDb } from '../lib/wiring/from-config';

/** DATABASE_SYSTEM_URL if set (this needs no Temporal), else the velro_system login of the running `npm start` stack. */
function databaseUrl(): string {
  return resolveEndpoints(loadConfig(), { system: true }).systemDatabaseUrl;
}

async function main(): Promise<number> {
  let db;
  try {
    const config = loadConfig();
    db = createSystemDb({ ...config, DATABASE_POOL_MAX: 1 }, databaseUrl(), 'velro-ledger-check');
    await db.query('SELECT 1');
  } catch (err) {
    console.error(
      `ledger check: cannot connect to the database: ${err instanceof Error ? err.message : String(err)}`,
    );
    await db?.end().catch(() => undefined);
    return 2;
  }
  try {
    const report = await checkLedgerReport(db);
    for (const p of report.problems) {
      const where = [
        p.accountId && `account ${p.accountId}`,
        p.generationId && `generation ${p.generationId}`,
      ]
        .filter(Boolean)
        .join(' ');
      console.log(`${p.kind}${where ? ` ${where}` : ''}: ${p.detail}`);
    }
    console.log(
      `ledger check: ${report.accounts} accounts, ${report.transfers} transfers, ${report.problems.length} problems`,
    );
    return report.problems.length > 0 ? 1 : 0;
  } finally {
    await db.end();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`ledger check failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
