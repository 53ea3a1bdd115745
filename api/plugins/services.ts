import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../lib/config';
import type { Db } from '../../lib/db/pool';
import type { Storage } from '../../lib/storage/storage';

export interface AppServices {
  config: Config;
  db: Db;
  temporal: Client;
  storage: Storage;
  /** Key for signing asset URLs. */
  assetSigningKey: Buffer;
}

declare module 'fastify' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- merges the services into Fastify's type
  interface FastifyInstance extends AppServices {}
}

/** Makes the shared services reachable as `app.db`, `app.temporal`, ... in every route. */
export default fp(
  async function services(app: FastifyInstance, opts: AppServices) {
    app.decorate('config', opts.config);
    app.decorate('db', opts.db);
    app.decorate('temporal', opts.temporal);
    app.decorate('storage', opts.storage);
    app.decorate('assetSigningKey', opts.assetSigningKey);
  },
  { name: 'services' },
);
