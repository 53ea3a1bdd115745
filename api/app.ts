import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import auth from './plugins/auth';
import docs from './plugins/docs';
import errors from './plugins/errors';
import metrics from './plugins/metrics';
import services, { type AppServices } from './plugins/services';
import assets from './routes/assets';
import credits from './routes/credits';
import generations from './routes/generations';
import health from './routes/health';
import me from './routes/me';
import models from './routes/models';

export interface BuildOptions extends AppServices {
  logger?: FastifyServerOptions['logger'];
}

/** The whole API as a Fastify instance: `server.ts` listens with it, tests call it through `inject`. */
export async function buildApp(opts: BuildOptions) {
  const app = Fastify({
    logger: opts.logger ?? false,
    genReqId: () => randomUUID(),
    bodyLimit: 256 * 1024,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });

  await app.register(services, opts);
  await app.register(errors);
  await app.register(auth);
  await app.register(metrics);
  await app.register(docs);

  await app.register(health);
  await app.register(models);
  await app.register(generations);
  await app.register(credits);
  await app.register(me);
  await app.register(assets);

  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
