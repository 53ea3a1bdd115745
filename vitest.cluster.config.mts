import { defineConfig } from 'vitest/config';

// `npm run test:cluster`: the fault tests on a real cluster (lib/dev/cluster.ts). They start their own
// Postgres, temporal-server, APIs and workers, so the test stack of vitest.config.mts is not used.
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    pool: 'forks',
    // The test skips itself under vitest.config.mts (its include matches test/cluster too).
    env: { VELRO_CLUSTER_TESTS: '1' },
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 300_000,
  },
});
