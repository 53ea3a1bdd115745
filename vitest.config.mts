import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The cluster's fault test runs on its own: npm run test:cluster (vitest.cluster.config.mts).
    exclude: [...configDefaults.exclude, 'test/cluster/**'],
    globalSetup: ['test/support/global-setup.ts'],
    // Separate processes: Temporal's native worker does not belong in worker threads.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
