// `npm run setup:temporal`: fetch the pinned Temporal CLI if missing and print its path.
// The code is lib/temporal/cli.ts.
import { ensureTemporalCli } from '../lib/temporal/cli';

ensureTemporalCli().then(
  (bin) => process.stdout.write(`${bin}\n`),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
