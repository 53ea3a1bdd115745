import path from 'node:path';
import { activeProvider, type Config } from '../config';
import { createPool, type Db } from '../db/pool';
import { LocalProvider } from '../providers/local-provider';
import type { Provider, ProviderName } from '../providers/provider';
import { FsStorage } from '../storage/fs-storage';
import type { Storage } from '../storage/storage';

/** The shared pieces the API and the worker both build from configuration. */
export function createDb(
  config: Config,
  databaseUrl: string,
  name: string,
  onError?: (e: Error) => void,
): Db {
  return createPool(
    {
      connectionString: databaseUrl,
      role: config.DATABASE_APP_ROLE,
      max: config.DATABASE_POOL_MAX,
      applicationName: name,
    },
    onError,
  );
}

export function createStorage(config: Config): Storage {
  if (config.STORAGE_DRIVER === 's3') {
    throw new Error('STORAGE_DRIVER=s3 is not available yet; use fs');
  }
  return new FsStorage(path.join(config.dataDir, 'storage'));
}

export function createProviders(config: Config): Record<ProviderName, Provider | undefined> {
  return {
    local: new LocalProvider({
      latencyMs: config.LOCAL_PROVIDER_LATENCY_MS,
      failureRate: config.LOCAL_PROVIDER_FAILURE_RATE,
    }),
    fal: undefined,
    replicate: undefined,
  };
}

export { activeProvider };
