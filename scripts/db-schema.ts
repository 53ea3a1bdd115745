// `npm run db:schema`: regenerates db/schema.sql, the live definition of every function, view and
// policy once all migrations have run. Migrates a scratch embedded Postgres (a temporary folder,
// removed after), or, with DATABASE_URL (an owner login), migrates and reads that database.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { dumpSchema, SCHEMA_FILE } from '../lib/db/schema-dump';
import { ensureDatabase, migrate } from '../lib/db/migrate';
import { startEmbeddedPostgres } from '../lib/dev/embedded-postgres';
import { freePort } from '../lib/net/free-port';

async function fromScratchDatabase(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-schema-'));
  try {
    const pg = await startEmbeddedPostgres({ dataDir: path.join(dir, 'postgres'), port: await freePort() });
    try {
      const url = await ensureDatabase(pg.adminUrl, 'velro');
      await migrate(url);
      return await dumpSchema(url);
    } finally {
      await pg.stop();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const given = process.env.DATABASE_URL;
  let text: string;
  if (given) {
    await migrate(given);
    text = await dumpSchema(given);
  } else {
    text = await fromScratchDatabase();
  }
  await fs.writeFile(SCHEMA_FILE, text);
  console.log(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
