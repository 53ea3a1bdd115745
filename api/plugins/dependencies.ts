import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../lib/config';
import type { Db } from '../../lib/db/pool';
import type { Storage } from '../../lib/storage/storage';

/** What the API is given to work with, built by its caller (server.ts, the tests). */
export interface AppDependencies {
  config: Config;
  db: Db;
  temporal: Client;
  storage: Storage;
  /** Key for signing asset URLs. */
  assetSigningKey: Buffer;
}

declare module 'fastify' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- merges the dependencies into Fastify's type
  interface FastifyInstance extends AppDependencies {}
}

/** Decorates the app with its dependencies: `app.db`, `app.temporal`, ... in every plugin and route. */
export default fp(
  async function decorateDependencies(app: FastifyInstance, opts: AppDependencies) {
    app.decorate('config', opts.config);
    app.decorate('db', opts.db);
    app.decorate('temporal', opts.temporal);
    app.decorate('storage', opts.storage);
    app.decorate('assetSigningKey', opts.assetSigningKey);
  },
  { name: 'dependencies' },
);
