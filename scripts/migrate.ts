// `npm run migrate`: the deploy step, run once before the API and workers start (docker-compose's
// `migrate` service). As the owner (DATABASE_URL): applies pending migrations, makes sure the logins
// in DATABASE_APP_URL and DATABASE_SYSTEM_URL work (sets their passwords if they do not yet), and
// writes SIGNUP_CREDITS where sign-up reads it. The API and workers then need no owner URL.
import { loadConfig } from '../lib/config';
import { prepareDatabase } from '../lib/db/logins';

async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.DATABASE_URL) throw new Error('DATABASE_URL (the owner login) is required to migrate');
  const applied = await prepareDatabase(config.DATABASE_URL, {
    appDatabaseUrl: config.DATABASE_APP_URL,
    systemDatabaseUrl: config.DATABASE_SYSTEM_URL,
    signupCredits: config.SIGNUP_CREDITS,
  });
  console.log(applied.length ? `applied ${applied.join(', ')}` : 'database is up to date');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
