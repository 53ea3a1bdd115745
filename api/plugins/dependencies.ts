import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../lib/config';
import type { Db } from '../../lib/db/pool';
import type { Mailer } from '../../lib/mail/mailer';
import type { Storage } from '../../lib/storage/storage';
import { createMailer } from '../../lib/wiring/from-config';

/** What the API is given to work with, built by its caller (server.ts, the tests). */
export interface AppDependencies {
  config: Config;
  db: Db;
  temporal: Client;
  storage: Storage;
  /** Key for signing asset URLs. */
  assetSigningKey: Buffer;
  /** Sends e-mail (team invitations); by default the one SMTP_URL configures, closed with the app. */
  mailer?: Mailer;
}

declare module 'fastify' {
  interface FastifyInstance extends Omit<AppDependencies, 'mailer'> {
    mailer: Mailer;
  }
}

/** Decorates the app with its dependencies: `app.db`, `app.temporal`, ... in every plugin and route. */
export default fp(
  async function decorateDependencies(app: FastifyInstance, opts: AppDependencies) {
    app.decorate('config', opts.config);
    app.decorate('db', opts.db);
    app.decorate('temporal', opts.temporal);
    app.decorate('storage', opts.storage);
    app.decorate('assetSigningKey', opts.assetSigningKey);
    const mailer = opts.mailer ?? createMailer(opts.config);
    app.decorate('mailer', mailer);
    if (!opts.mailer) app.addHook('onClose', async () => mailer.close());
  },
  { name: 'dependencies' },
);
