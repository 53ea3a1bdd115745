import { Client, Connection } from '@temporalio/client';
import { assetSigningKey } from '../lib/auth/signing-key';
import { migrate } from '../lib/db/migrate';
import { loadConfig } from '../lib/config';
import { resolveEndpoints } from '../lib/runtime/endpoints';
import { createDb, createStorage } from '../lib/runtime/services';
import { buildApp } from './app';

async function main() {
  const config = loadConfig();
  const { databaseUrl, temporalAddress } = resolveEndpoints(config);
  // Every process applies pending migrations at start; an advisory lock makes concurrent starts safe.
  await migrate(databaseUrl);
  const logger = { level: config.LOG_LEVEL, base: { process: 'api' } };
  const connection = await Connection.connect({ address: temporalAddress, connectTimeout: '10 seconds' });
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const db = createDb(config, databaseUrl, 'velro-api');
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
