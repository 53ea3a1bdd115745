import type { Config } from '../config';
// Production takes the variables; the dev stack's file is the fallback for local processes.
import { readStackInfo } from '../dev/stack-file';

export interface Endpoints {
  /** The velro_app login (DATABASE_APP_URL). */
  appDatabaseUrl?: string;
  /** The velro_system login (DATABASE_SYSTEM_URL). */
  systemDatabaseUrl?: string;
  temporalAddress?: string;
}

export interface Needs {
  app?: boolean;
  system?: boolean;
  temporal?: boolean;
}

type Resolved<N extends Needs> = {
  appDatabaseUrl: N['app'] extends true ? string : undefined;
  systemDatabaseUrl: N['system'] extends true ? string : undefined;
  temporalAddress: N['temporal'] extends true ? string : undefined;
};

/**
 * What a process needs, each from its variable (DATABASE_APP_URL, DATABASE_SYSTEM_URL,
 * TEMPORAL_ADDRESS), else from the `npm start` stack running on the same data dir. Only what is
 * asked for is handed out: the API gets no system login. The owner login (DATABASE_URL) is never
 * taken from the stack: only migrations use it.
 */
export function resolveEndpoints<N extends Needs>(config: Config, needs: N): Resolved<N> {
  const given = {
    app: config.DATABASE_APP_URL,
    system: config.DATABASE_SYSTEM_URL,
    temporal: config.TEMPORAL_ADDRESS,
  };
  const wanted = (['app', 'system', 'temporal'] as const).filter((k) => needs[k]);
  const stack = wanted.every((k) => given[k]) ? undefined : readStackInfo(config.dataDir);
  const found = {
    app: given.app ?? stack?.appDatabaseUrl,
    system: given.system ?? stack?.systemDatabaseUrl,
    temporal: given.temporal ?? stack?.temporalAddress,
  };
  const names = { app: 'DATABASE_APP_URL', system: 'DATABASE_SYSTEM_URL', temporal: 'TEMPORAL_ADDRESS' };
  const missing = wanted.filter((k) => !found[k]).map((k) => names[k]);
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(' and ')} not set, and no \`npm start\` stack is running on ${config.dataDir}. ` +
        'Set them, or run `npm start` to bring up the embedded stack.',
    );
  }
  return {
    appDatabaseUrl: needs.app ? found.app : undefined,
    systemDatabaseUrl: needs.system ? found.system : undefined,
    temporalAddress: needs.temporal ? found.temporal : undefined,
  } as Resolved<N>;
}
