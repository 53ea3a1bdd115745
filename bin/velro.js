#!/usr/bin/env node
// `npx velro`: the client CLI, run from its TypeScript sources through tsx.
require('tsx/cjs');
require('../cli/main.ts')
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`velro: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
