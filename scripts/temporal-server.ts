// `npm run setup:temporal-server`: fetch or build temporal-server, temporal-sql-tool (and their
// schemas) and the Temporal UI server if missing, and print where they are. `-- --without-ui` skips
// the UI (the fault test does not start it). The code is lib/temporal/server-binary.ts and
// lib/temporal/cluster-ui.ts.
import { ensureUiServer } from '../lib/temporal/cluster-ui';
import { ensureTemporalServer } from '../lib/temporal/server-binary';

async function main() {
  const log = (m: string) => console.error(m);
  const install = await ensureTemporalServer(log);
  const paths = [install.serverBin, install.sqlToolBin, install.schemaDir];
  if (!process.argv.includes('--without-ui')) paths.push(await ensureUiServer(log));
  process.stdout.write(`${paths.join('\n')}\n`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
