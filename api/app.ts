import { randomUUID } from 'node:crypto';
import Fastify, {
  type FastifyError,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { problem } from './errors';
import { BODY_LIMIT, clientErrorHandler, MAX_PARAM_LENGTH } from './limits';
import { loggerOptions } from './logging';
import auth from './plugins/auth';
import docs from './plugins/docs';
import errors from './plugins/errors';
import idempotency from './plugins/idempotency';
import metrics from './plugins/metrics';
import security from './plugins/security';
import dependencies, { type AppDependencies } from './plugins/dependencies';
import admin from './routes/admin';
import adminAccountLimits from './routes/admin-account-limits';
import apiKeys from './routes/api-keys';
import assets from './routes/assets';
import authRoutes from './routes/auth';
import credits from './routes/credits';
import teamCredits from './routes/team-credits';
import teamUsage from './routes/team-usage';
import generationEvents from './routes/generation-events';
import generations from './routes/generations';
import health from './routes/health';
import me from './routes/me';
import models from './routes/models';
import providerWebhooks from './routes/provider-webhooks';
import projects from './routes/projects';
import invitations from './routes/invitations';
import teamInvitations from './routes/team-invitations';
import teamAuditLog from './routes/team-audit-log';
import teamMembers from './routes/team-members';
import teams from './routes/teams';
import webhookDeliveries from './routes/webhook-deliveries';
import webhookEndpoints from './routes/webhook-endpoints';
import teamApiKeys from './routes/team-api-keys';
import teamWebhookEndpoints from './routes/team-webhook-endpoints';
import webhookSecret from './routes/webhook-secret';
import uploads from './routes/uploads';

export interface RouteEntry {
  method: string;
  url: string;
  hidden: boolean;
  /** `config.public`: the auth hook lets it through without credentials. */
  public: boolean;
  /** `config.idempotent`: it honours Idempotency-Key. */
  idempotent: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    routeTable: RouteEntry[];
  }
}

/** A URL the router refuses (bad encoding, a path segment over 100 characters) as problem+json. */
function routerError(err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
  const status = tooLong ? 414 : 400;
  const detail = tooLong
    ? `A path segment is longer than ${MAX_PARAM_LENGTH} characters.`
    : 'The URL is not valid.';
  return reply
    .status(status)
    .header('x-request-id', req.id)
    .type('application/problem+json')
    .send(problem(status, tooLong ? 'uri_too_long' : 'invalid_request', detail, req.id));
}

/** TRUST_PROXY as Fastify takes it: a hop count becomes "trust the nearest N proxies". */
function trustProxy(setting: boolean | number | string[] | undefined): FastifyServerOptions['trustProxy'] {
  if (typeof setting === 'number') return (_address: string, hop: number) => hop < setting;
  return setting ?? false;
}

export interface BuildOptions extends AppDependencies {
  logger?: FastifyServerOptions['logger'];
}

/** The whole API as a Fastify instance: `server.ts` listens with it, tests call it through `inject`. */
export async function buildApp(opts: BuildOptions) {
  const app = Fastify({
    logger: loggerOptions(opts.logger ?? false),
    genReqId: () => randomUUID(),
    bodyLimit: BODY_LIMIT,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    trustProxy: trustProxy(opts.config.TRUST_PROXY),
    // URLs the router refuses before any route or hook runs: answered like every other error.
    frameworkErrors: routerError,
    // Requests Node's HTTP parser refuses before Fastify sees them: answered like every other error.
    clientErrorHandler,
  }).withTypeProvider<ZodTypeProvider>();

  // Every route, as registered: the OpenAPI completeness test compares it with the document.
  const routeTable: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      routeTable.push({
        method,
        url: route.url,
        hidden: Boolean((route.schema as { hide?: boolean } | undefined)?.hide),
        public: Boolean(route.config?.public),
        idempotent: Boolean(route.config?.idempotent),
      });
    }
  });
  app.decorate('routeTable', routeTable);

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });

  await app.register(dependencies, opts);
  await app.register(errors);
  await app.register(security);
  await app.register(auth);
  await app.register(idempotency);
  await app.register(metrics);
  await app.register(docs);

  await app.register(health);
  await app.register(models);
  await app.register(authRoutes);
  await app.register(apiKeys);
  await app.register(teams);
  await app.register(teamMembers);
  await app.register(teamAuditLog);
  await app.register(teamInvitations);
  await app.register(invitations);
  await app.register(projects);
  await app.register(generations);
  await app.register(generationEvents);
  await app.register(credits);
  await app.register(teamCredits);
  await app.register(teamUsage);
  await app.register(me);
  await app.register(assets);
  await app.register(uploads);
  await app.register(providerWebhooks);
  await app.register(webhookSecret);
  await app.register(webhookDeliveries);
  await app.register(webhookEndpoints);
  await app.register(teamApiKeys);
  await app.register(teamWebhookEndpoints);
  await app.register(admin);
  await app.register(adminAccountLimits);

  return app;
}

export type App = Awaited<ReturnType<typeof buildApp>>;
