import type { Config } from '../config';
import { readStackInfo } from './stack-file';

export interface Endpoints {
  databaseUrl: string;
  temporalAddress: string;
}

/** DATABASE_URL and TEMPORAL_ADDRESS, else those of the `npm start` stack running on the same data dir. */
export function resolveEndpoints(config: Config): Endpoints {
  const stack = config.DATABASE_URL && config.TEMPORAL_ADDRESS ? undefined : readStackInfo(config.dataDir);
  const databaseUrl = config.DATABASE_URL ?? stack?.databaseUrl;
  const temporalAddress = config.TEMPORAL_ADDRESS ?? stack?.temporalAddress;
  if (!databaseUrl || !temporalAddress) {
    const missing = [!databaseUrl && 'DATABASE_URL', !temporalAddress && 'TEMPORAL_ADDRESS']
      .filter(Boolean)
      .join(' and ');
    throw new Error(
      `${missing} not set, and no \`npm start\` stack is running on ${config.dataDir}. ` +
        'Set them, or run `npm start` to bring up the embedded stack.',
    );
  }
  return { databaseUrl, temporalAddress };
}
