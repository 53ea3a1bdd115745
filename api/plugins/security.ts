import fastifyCors from '@fastify/cors';
import fastifyRateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { HelmetOptions } from 'helmet';
import fp from 'fastify-plugin';
import { sharedRateLimitStore } from '../../lib/rate-limits/fastify-store';
import { ApiError, unavailable } from '../errors';
import { helmetHeaders } from './security-headers';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served to other origins' pages (`<img src>`): Cross-Origin-Resource-Policy cross-origin. */
    crossOrigin?: boolean;
  }
}

/** Routes that infrastructure polls; never rate-limited. */
export const UNLIMITED_ROUTES = new Set(['/health', '/ready', '/metrics']);

/** The rate-limit bucket of an anonymous request: its client address (a /64 for IPv6). */
export const ipKey = (req: FastifyRequest) => `ip:${normalizeIP(req.ip)}`;

/** How long a request waits for its count (one upsert) before it is refused with 503. */
const RATE_LIMIT_COUNT_TIMEOUT_MS = 2_000;

export const rateLimitUnavailable = () =>
  unavailable('Requests cannot be counted right now; try again shortly.');

export const rateLimited = (after: string, retryAfterSeconds?: number) =>
  new ApiError(429, 'rate_limited', `Too many requests; retry in ${after}.`, {
    ...(retryAfterSeconds !== undefined ? { headers: { 'retry-after': String(retryAfterSeconds) } } : {}),
  });

/**
 * Security headers (helmet), CORS for the configured origins only, and rate limits: per user once
 * authenticated, per IP address before that. Register before `auth` and before any route.
 * Every limit (these, `auth`'s failed credentials, the login routes') counts in Postgres, shared by
 * the deployment's API processes (those with the same TEMPORAL_TASK_QUEUE); a request whose count
 * cannot be had gets 503, never a free pass.
 */
export default fp(
  async function security(app: FastifyInstance) {
    const config = app.config;

    const helmetOptions: HelmetOptions = {
      // The only HTML is the docs UI at /docs, whose scripts and styles are files of its own;
      // swagger-ui sets inline style attributes, hence 'unsafe-inline' for styles only.
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          baseUri: ["'self'"],
          connectSrc: ["'self'"],
          fontSrc: ["'self'", 'data:'],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          imgSrc: ["'self'", 'data:'],
          objectSrc: ["'none'"],
          scriptSrc: ["'self'"],
          scriptSrcAttr: ["'none'"],
          styleSrc: ["'self'", "'unsafe-inline'"],
        },
      },
      // Plain-HTTP development setups must keep working; TLS is the deployment's business (HSTS).
      strictTransportSecurity: config.NODE_ENV === 'production',
      // API clients are not browsers opening popups; generated assets set their own policy.
      crossOriginOpenerPolicy: { policy: 'same-origin' },
      crossOriginResourcePolicy: { policy: 'same-origin' },
    };
    const sameOrigin = helmetHeaders(helmetOptions);
    const crossOrigin = helmetHeaders({
      ...helmetOptions,
      crossOriginResourcePolicy: { policy: 'cross-origin' },
    });
    app.addHook('onRequest', async (req, reply) => {
      reply.headers(req.routeOptions.config?.crossOrigin ? crossOrigin : sameOrigin);
    });

    if (config.CORS_ORIGINS && config.CORS_ORIGINS.length > 0) {
      await app.register(fastifyCors, {
        origin: config.CORS_ORIGINS,
        methods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE'],
        allowedHeaders: ['authorization', 'content-type', 'idempotency-key', 'prefer'],
        exposedHeaders: [
          'location',
          'retry-after',
          'x-request-id',
          'x-ratelimit-limit',
          'x-ratelimit-remaining',
          'x-ratelimit-reset',
        ],
        credentials: false, // bearer tokens, never cookies
        maxAge: 600,
        // An OPTIONS without CORS headers gets an empty 204 rather than a text/plain 400.
        strictPreflight: false,
      });
    }

    let warnedAt = 0;
    const store = sharedRateLimitStore({
      db: app.db,
      deployment: config.TEMPORAL_TASK_QUEUE,
      timeoutMs: RATE_LIMIT_COUNT_TIMEOUT_MS,
      unavailable: (err) => {
        // Once every 10 s at most: during an outage every request would say it.
        if (Date.now() - warnedAt > 10_000) {
          warnedAt = Date.now();
          app.log.warn({ err }, 'requests refused (503): their rate limits cannot be counted');
        }
        return rateLimitUnavailable();
      },
    });
    await app.register(fastifyRateLimit, {
      global: true,
      store,
      max: config.RATE_LIMIT_MAX,
      timeWindow: config.RATE_LIMIT_WINDOW_SECONDS * 1000,
      // After onRequest (so `auth` has named the caller) and before the body is read, so that
      // oversized or malformed bodies count too.
      hook: 'preParsing',
      keyGenerator: (req) => (req.caller ? `user:${req.caller.id}` : ipKey(req)),
      allowList: (req) => UNLIMITED_ROUTES.has(req.routeOptions.url ?? ''),
      errorResponseBuilder: (_req, ctx) => rateLimited(ctx.after),
    });
  },
  { name: 'security', dependencies: ['dependencies', 'errors'] },
);
