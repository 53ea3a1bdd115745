import { Client } from '@temporalio/client';
import { connectTemporalClient } from '../lib/temporal/client-connection';
import { assetSigningKey } from '../lib/auth/signing-key';
import { checkLogin, prepareDatabase } from '../lib/db/logins';
import { loadConfig } from '../lib/config';
import { resolveEndpoints } from '../lib/wiring/endpoints';
import { createDb, createStorage } from '../lib/wiring/from-config';
import { buildApp } from './app';

async function main() {
  const config = loadConfig();
  // The API logs in as velro_app only: every cross-user path it has is a narrow SQL function.
  const { appDatabaseUrl, temporalAddress } = resolveEndpoints(config, { app: true, temporal: true });
  // Given the owner login, apply pending migrations (an advisory lock makes concurrent starts safe);
  // without it, the database is migrated already.
  if (config.DATABASE_URL) {
    await prepareDatabase(config.DATABASE_URL, { appDatabaseUrl, signupCredits: config.SIGNUP_CREDITS });
  }
  const logger = { level: config.LOG_LEVEL, base: { process: 'api' } };
  const connection = await connectTemporalClient(temporalAddress);
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const db = createDb(config, appDatabaseUrl, 'velro-api');
  await checkLogin(db, 'velro_app');
  const app = await buildApp({
    config,
    db,
    temporal,
    storage: createStorage(config),
    assetSigningKey: await assetSigningKey(config),
    logger,
  });
  db.on('error', (err) => app.log.warn({ err }, 'idle database connection lost'));

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    await app.close();
    await connection.close();
    await db.end();
    process.exit(0);
  };
  process.once('SIGINT', () => void close('SIGINT'));
  process.once('SIGTERM', () => void close('SIGTERM'));

  await app.listen({ port: config.PORT, host: config.HOST });
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
