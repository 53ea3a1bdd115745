import path from 'node:path';
import { z } from 'zod';

// Unset and empty both mean "not given".
const optionalText = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v === '' ? undefined : v));

const optionalUrl = optionalText.pipe(z.url().optional());

const rate = z.coerce.number().min(0).max(1);

/** Where provider outputs may be downloaded from unless PROVIDER_OUTPUT_HOSTS says otherwise. */
export const DEFAULT_OUTPUT_HOSTS = [
  '*.fal.media',
  'fal.media',
  '*.fal.run',
  'replicate.delivery',
  '*.replicate.delivery',
];

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** `a.example,*.b.example`: exact host names, or `*.` for any subdomain; returned as `x` or `.x`. */
const hostList = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const given = (v ?? '').trim();
    const items = given ? given.split(',') : DEFAULT_OUTPUT_HOSTS;
    const hosts: string[] = [];
    for (const item of items) {
      const text = item.trim().toLowerCase();
      if (!text) continue;
      const wildcard = text.startsWith('*.');
      const name = wildcard ? text.slice(2) : text;
      if (!HOST_NAME.test(name)) {
        ctx.addIssue({ code: 'custom', message: `"${item.trim()}" is not a host name or *.host name` });
        return z.NEVER;
      }
      hosts.push(wildcard ? `.${name}` : name);
    }
    return hosts;
  });

const positiveInt = (max: number) => z.coerce.number().int().min(1).max(max);

/** `https://app.example.com,http://localhost:5173`: exact origins only, never `*`. */
const originList = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const origins: string[] = [];
    for (const item of (v ?? '').split(',')) {
      const text = item.trim();
      if (!text) continue;
      let url: URL | undefined;
      try {
        url = new URL(text);
      } catch {
        url = undefined;
      }
      if (
        !url ||
        text.includes('*') ||
        !/^https?:$/.test(url.protocol) ||
        url.origin !== text.replace(/\/$/, '')
      ) {
        ctx.addIssue({
          code: 'custom',
          message: `"${text}" is not an origin like https://app.example.com (no "*", no path)`,
        });
        return z.NEVER;
      }
      origins.push(url.origin);
    }
    return origins;
  });

/** Fastify's trustProxy: `false` (default), `true`, a hop count, or comma-separated addresses/CIDRs. */
const trustProxy = z
  .string()
  .trim()
  .optional()
  .transform((v): boolean | number | string[] => {
    if (!v || v === 'false') return false;
    if (v === 'true') return true;
    if (/^\d+$/.test(v)) return Number(v);
    return v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  });

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: optionalUrl,
  /** Role the API and worker act as; owns nothing and cannot bypass row-level security. */
  DATABASE_APP_ROLE: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/, 'must be a plain lower-case SQL identifier')
    .default('velro_app'),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  TEMPORAL_ADDRESS: optionalText,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('velro-generations'),
  /** A prebuilt workflow bundle for workers (default: dist/ in production, else bundled at start). */
  TEMPORAL_WORKFLOW_BUNDLE: optionalText,
  TEMPORAL_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
  VELRO_DATA_DIR: z.string().min(1).default('.data'),
  VELRO_PUBLIC_URL: optionalUrl,
  JWT_SECRET: optionalText,
  FAL_KEY: optionalText,
  FAL_QUEUE_URL: z.url().default('https://queue.fal.run'),
  FAL_JWKS_URL: z.url().default('https://rest.fal.ai/.well-known/jwks.json'),
  REPLICATE_API_TOKEN: optionalText,
  REPLICATE_API_URL: z.url().default('https://api.replicate.com'),
  /** `whsec_<base64>` (GET /v1/webhooks/default/secret): without it no Replicate webhook is asked for. */
  REPLICATE_WEBHOOK_SECRET: optionalText.pipe(
    z
      .string()
      .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'must be whsec_ followed by base64')
      .optional(),
  ),
  /** Time limit of every HTTP request to fal or Replicate. */
  PROVIDER_HTTP_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(20_000),
  /** First wait between polls of fal or Replicate (grows ×1.5 up to 15 s); webhooks cut it short. */
  /** How long a submit waits for the workflow to reserve the credits before answering 503. */
  ADMISSION_TIMEOUT_MS: z.coerce.number().int().min(1000).max(120_000).default(30_000),
  PROVIDER_POLL_INITIAL_MS: z.coerce.number().int().min(50).max(60_000).default(2000),
  /** Hosts provider outputs are downloaded from, comma-separated; `*.example.com` for subdomains. */
  PROVIDER_OUTPUT_HOSTS: hostList,
  VELRO_PROVIDER: z.enum(['local', 'fal', 'replicate']).optional(),
  STORAGE_DRIVER: z.enum(['fs', 's3']).default('fs'),
  /** The bucket outputs go to with STORAGE_DRIVER=s3 (required then); credentials: the AWS chain. */
  S3_BUCKET: optionalText.pipe(
    z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 of a-z 0-9 . -)')
      .optional(),
  ),
  /** An S3-compatible server (MinIO, R2, …) instead of AWS. */
  S3_ENDPOINT: optionalUrl,
  S3_REGION: optionalText.transform((v) => v ?? 'us-east-1'),
  /** `true` for servers that want `endpoint/bucket/key` rather than `bucket.endpoint/key`. */
  S3_FORCE_PATH_STYLE: optionalText.pipe(z.stringbool().optional()).transform((v) => v ?? false),
  /** Time limit of connecting, of each S3 request until its answer, and of an idle S3 socket. */
  S3_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** Attempts per S3 call (1: no retry); throttling, 5xx and timeouts are retried with backoff. */
  S3_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(3),
  LOCAL_PROVIDER_LATENCY_MS: z.coerce.number().int().min(0).max(600_000).default(1500),
  LOCAL_PROVIDER_FAILURE_RATE: rate.default(0),
  /** Lifetime of a login token (JWT). */
  JWT_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3600),
  /** Credits granted to every new account at sign-up (0: none). */
  SIGNUP_CREDITS: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
  /** Requests per window per user (authenticated) or per IP address (anonymous). */
  RATE_LIMIT_MAX: positiveInt(1_000_000).default(600),
  RATE_LIMIT_WINDOW_SECONDS: positiveInt(86_400).default(60),
  /** Stricter, per IP address: login and register calls each, and failed credentials. */
  RATE_LIMIT_AUTH_MAX: positiveInt(1_000_000).default(20),
  /** Browser origins allowed to call the API (CORS), comma-separated; none by default. */
  CORS_ORIGINS: originList,
  /** Trust X-Forwarded-* from these proxies (for client IPs behind a load balancer). */
  TRUST_PROXY: trustProxy,
  /** How long a signed asset URL handed out in a generation stays valid. */
  ASSET_URL_TTL_SECONDS: positiveInt(7 * 86_400).default(86_400),
  /** Time limit of one outgoing webhook request (connect, headers and the bounded body read). */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /** First wait before retrying a failed webhook delivery; doubles each time up to the maximum. */
  WEBHOOK_RETRY_INITIAL_MS: z.coerce.number().int().min(10).max(3_600_000).default(30_000),
  WEBHOOK_RETRY_MAX_INTERVAL_MS: z.coerce.number().int().min(10).max(86_400_000).default(3_600_000),
  /** Attempts per delivery, the first included; the defaults spread 30 attempts over about 23 hours. */
  WEBHOOK_MAX_ATTEMPTS: positiveInt(100).default(30),
  /** After a secret rotation, deliveries carry a signature with the old secret too for this long. */
  WEBHOOK_SECRET_OVERLAP_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(30 * 86_400)
    .default(86_400),
  /**
   * Whether webhooks may target loopback, private, link-local... addresses. Default: yes outside
   * production (development and tests receive locally), no in production. Production also always
   * requires https.
   */
  WEBHOOK_ALLOW_PRIVATE_URLS: z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1')),
});

export type Config = z.infer<typeof configSchema> & { dataDir: string };

export class ConfigError extends Error {}

/** Parses the environment once; a bad value names the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  if (config.VELRO_PROVIDER === 'fal' && !config.FAL_KEY) {
    throw new ConfigError('Invalid configuration:\n  VELRO_PROVIDER: fal needs FAL_KEY');
  }
  if (config.VELRO_PROVIDER === 'replicate' && !config.REPLICATE_API_TOKEN) {
    throw new ConfigError('Invalid configuration:\n  VELRO_PROVIDER: replicate needs REPLICATE_API_TOKEN');
  }
  if (config.NODE_ENV === 'production' && !config.JWT_SECRET) {
    throw new ConfigError('Invalid configuration:\n  JWT_SECRET: required when NODE_ENV=production');
  }
  return { ...config, dataDir: path.resolve(config.VELRO_DATA_DIR) };
}

/** Which provider generations go to: forced by VELRO_PROVIDER, else the first one with a key, else local. */
export function activeProvider(config: Config): 'local' | 'fal' | 'replicate' {
  if (config.VELRO_PROVIDER) return config.VELRO_PROVIDER;
  if (config.FAL_KEY) return 'fal';
  if (config.REPLICATE_API_TOKEN) return 'replicate';
  return 'local';
}

export function publicUrl(config: Config): string {
  return (config.VELRO_PUBLIC_URL ?? `http://localhost:${config.PORT}`).replace(/\/$/, '');
}
