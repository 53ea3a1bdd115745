// `npm run setup:temporal-server`: fetch or build temporal-server, temporal-sql-tool (and their
// schemas) and the Temporal UI server if missing, and print where they are. The code is
// lib/temporal/server-binary.ts and lib/temporal/cluster-ui.ts.
import { ensureUiServer } from '../lib/temporal/cluster-ui';
import { ensureTemporalServer } from '../lib/temporal/server-binary';

async function main() {
  const log = (m: string) => console.error(m);
  const install = await ensureTemporalServer(log);
  const ui = await ensureUiServer(log);
  process.stdout.write(`${[install.serverBin, install.sqlToolBin, install.schemaDir, ui].join('\n')}\n`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
