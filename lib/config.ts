// Every environment variable Velro reads, parsed and documented in one zod schema. Over 300 lines on
// purpose: each variable is one documented entry, and splitting the schema would scatter them.
import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { parseFalEndpoints } from './catalog/fal-endpoints';
import { PROVIDER_NAMES, type ProviderName } from './providers/names';

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

const TRUST_PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** `10.0.0.7`, `fd00::/8`, `10.0.0.0/8`: an IPv4 or IPv6 address, with an optional prefix length. */
function isAddressOrCidr(text: string): boolean {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = net.isIP(address);
  if (family === 0) return false;
  if (slash < 0) return true;
  const prefix = text.slice(slash + 1);
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

/**
 * Fastify's trustProxy: `false` (default), a hop count, or comma-separated proxy addresses/CIDRs
 * (or proxy-addr's `loopback`, `linklocal`, `uniquelocal`). Never `true`: that trusts every hop, so
 * any client would pick its own address with X-Forwarded-For and walk past the per-IP limits.
 */
const trustProxy = z
  .string()
  .trim()
  .optional()
  .transform((v, ctx): false | number | string[] => {
    if (!v || v === 'false' || v === '0') return false;
    if (v.toLowerCase() === 'true') {
      ctx.addIssue({
        code: 'custom',
        message:
          '"true" would trust every X-Forwarded-For hop, so any client could choose its own address and ' +
          'evade the per-IP login limits; give the number of proxies in front of Velro (e.g. 1) or their addresses/CIDRs',
      });
      return z.NEVER;
    }
    if (/^\d+$/.test(v)) {
      const hops = Number(v);
      if (hops > 100) {
        ctx.addIssue({ code: 'custom', message: `${v} proxy hops is not plausible (at most 100)` });
        return z.NEVER;
      }
      return hops;
    }
    const items = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const item of items) {
      if (!TRUST_PROXY_NAMES.has(item) && !isAddressOrCidr(item)) {
        ctx.addIssue({
          code: 'custom',
          message: `"${item}" is not a hop count, an IP address or a CIDR like 10.0.0.0/8 or fd00::/8`,
        });
        return z.NEVER;
      }
    }
    return items;
  });

/** `true`/`false` (also 1/0, yes/no, on/off); unset or empty: `false`, the strict choice. */
const flag = optionalText.pipe(z.stringbool().optional()).transform((v) => v ?? false);

/** Words that mark a JWT_SECRET as a placeholder or a made-up phrase rather than random bytes. */
const PLACEHOLDER_WORDS = [
  'changeme',
  'replaceme',
  'secret',
  'example',
  'password',
  'passw0rd',
  'placeholder',
  'insecure',
  'default',
  'sample',
  'velro',
];

export const JWT_SECRET_MIN_LENGTH = 43;
export const JWT_SECRET_MIN_BITS = 256;

/**
 * A conservative estimate of a secret's randomness, in bits: length × log2(size of the character
 * classes it uses: a-z 26, A-Z 26, 0-9 10, anything else 33). A passphrase (words and numbers
 * between separators) counts ~13 bits per word instead (a diceware word is 12.9).
 */
export function estimateSecretBits(secret: string): number {
  const chars = [...secret];
  let pool = 0;
  if (chars.some((c) => c >= 'a' && c <= 'z')) pool += 26;
  if (chars.some((c) => c >= 'A' && c <= 'Z')) pool += 26;
  if (chars.some((c) => c >= '0' && c <= '9')) pool += 10;
  if (chars.some((c) => !/[a-zA-Z0-9]/.test(c))) pool += 33;
  // Mixed-case text in a base64 alphabet is read as base64 (6 bits a character), not by the classes
  // it happens to show: 43 characters of base64url carry 256 bits, but about one in 1,500 of them
  // has no digit, and counting classes would then refuse a sound secret.
  const base64 =
    (/^[A-Za-z0-9+/]+=*$/.test(secret) || /^[A-Za-z0-9_-]+$/.test(secret)) &&
    /[a-z]/.test(secret) &&
    /[A-Z]/.test(secret);
  const classBits = pool > 1 ? chars.length * Math.max(Math.log2(pool), base64 ? 6 : 0) : 0;
  // CamelCase words (`MySecretIsLong…`) are a phrase, however they are joined.
  const camel = secret.split(/(?=[A-Z])/);
  if (camel.length >= 3 && camel.every((t) => /^[A-Z][a-z]+$/.test(t)))
    return Math.min(classBits, camel.length * 13);
  const tokens = secret.split(/[\s\-_.,;:!?'"]+/).filter(Boolean);
  // Words as people write them (lower case, or capitalised), not random letters: a token of random
  // base64 mixes cases, so a real random secret is never taken for a phrase.
  if (tokens.length >= 3 && tokens.every((t) => /^[A-Z]?[a-z]+$|^[A-Z]+$|^\d+$/.test(t))) {
    const phraseBits = tokens.reduce((n, t) => n + (/^\d/.test(t) ? t.length * Math.log2(10) : 13), 0);
    return Math.min(classBits, phraseBits);
  }
  return classBits;
}

/** Shannon entropy of the string's own character frequencies, in bits per character. */
function shannonPerChar(secret: string): number {
  const chars = [...secret];
  const counts = new Map<string, number>();
  for (const c of chars) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) bits -= (n / chars.length) * Math.log2(n / chars.length);
  return bits;
}

/** The shortest period of a string that repeats a shorter unit (`abcabcab` → 3), else its length. */
function period(s: string): number {
  for (let p = 1; p <= s.length / 2; p++) {
    let repeats = true;
    for (let i = p; i < s.length && repeats; i++) repeats = s[i] === s[i - p];
    if (repeats) return p;
  }
  return s.length;
}

/** Why a production JWT_SECRET is not good enough, or undefined when it is. */
export function jwtSecretProblem(secret: string | undefined): string | undefined {
  if (!secret) return 'required when NODE_ENV=production';
  const folded = secret.toLowerCase().replace(/[^a-z0-9]/g, '');
  const word = PLACEHOLDER_WORDS.find((w) => folded.includes(w));
  if (word) return `looks like a placeholder (contains "${word}")`;
  if ([...secret].length < JWT_SECRET_MIN_LENGTH)
    return `is shorter than ${JWT_SECRET_MIN_LENGTH} characters`;
  // Random base64 or hex has at least ~3.3 bits per character; repeats and patterns far less.
  if (shannonPerChar(secret) < 3 || period(secret) <= secret.length / 2)
    return 'is too repetitive to be random';
  const bits = Math.floor(estimateSecretBits(secret));
  if (bits < JWT_SECRET_MIN_BITS)
    return `carries about ${bits} bits of randomness, fewer than ${JWT_SECRET_MIN_BITS}`;
  return undefined;
}

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** The owner login: migrations (and provisioning the two logins below) only. */
  DATABASE_URL: optionalUrl,
  /** The velro_app login (API, worker): no superuser, no BYPASSRLS, owns nothing, member of nothing. */
  DATABASE_APP_URL: optionalUrl,
  /** The velro_system login (worker's reconciler, admin commands, ledger check): acts across users. */
  DATABASE_SYSTEM_URL: optionalUrl,
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  TEMPORAL_ADDRESS: optionalText,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('velro-generations'),
  /** A prebuilt workflow bundle for workers (default: dist/ in production, else bundled at start). */
  TEMPORAL_WORKFLOW_BUNDLE: optionalText,
  TEMPORAL_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
  /** Worker Versioning (README, Rolling out): the Worker Deployment this worker's build belongs to. */
  TEMPORAL_DEPLOYMENT_NAME: z
    .string()
    .trim()
    .regex(/^[^.\s]{1,200}$/, 'a name without dots or spaces')
    .default('velro'),
  /** This worker's build; unset = an unversioned worker (no Worker Deployment, patched() alone). */
  TEMPORAL_BUILD_ID: optionalText.pipe(
    z
      .string()
      .regex(/^\S{1,200}$/, 'a build id without spaces')
      .optional(),
  ),
  /**
   * Workflows a worker keeps in memory between their tasks. Bounded so that memory does not grow with
   * the generations in flight (the SDK's default follows the heap: ~0.14 MB each, thousands of them);
   * an evicted generation replays its short history at its next task.
   */
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).default(100),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: positiveInt(10_000).default(40),
  WORKER_MAX_CONCURRENT_ACTIVITIES: positiveInt(10_000).default(100),
  WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES: positiveInt(10_000).default(100),
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
  /** fal's REST host for storage uploads of input images (`/storage/upload/initiate`). */
  FAL_STORAGE_URL: z.url().default('https://rest.fal.ai'),
  /**
   * Overrides of fal endpoint ids, as JSON `{"<model id>": {"text": "...", "image": "..."}}` (either
   * key may be left out): fal renames endpoints (shared/reference/teams-inputs-capacity.md).
   */
  FAL_ENDPOINTS: optionalText,
  /**
   * Input images up to this size go to Replicate inline as a data URI; larger ones through /v1/files.
   * At most 1 MB: the data URI travels in the workflow's history, whose payloads Temporal caps at 2 MB.
   */
  REPLICATE_DATA_URI_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(256 * 1024),
  /** Time limit of every HTTP request to fal or Replicate. */
  PROVIDER_HTTP_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(20_000),
  /** How long a submit waits for the workflow to reserve the credits before answering 503. */
  ADMISSION_TIMEOUT_MS: z.coerce.number().int().min(1000).max(120_000).default(30_000),
  /** First wait between polls of fal or Replicate (grows ×1.5 up to 15 s); webhooks cut it short. */
  PROVIDER_POLL_INITIAL_MS: z.coerce.number().int().min(50).max(60_000).default(2000),
  /** Hosts provider outputs are downloaded from, comma-separated; `*.example.com` for subdomains. */
  PROVIDER_OUTPUT_HOSTS: hostList,
  VELRO_PROVIDER: z.enum(PROVIDER_NAMES).optional(),
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
  /**
   * Jobs Velro keeps in flight at each provider (submitted and not yet ended), across all workers of
   * one task queue; more wait in Velro's own fair queue. Size them from the provider account's own
   * limit (README, "Capacity and fairness").
   */
  FAL_MAX_CONCURRENCY: positiveInt(10_000).default(10),
  REPLICATE_MAX_CONCURRENCY: positiveInt(10_000).default(20),
  LOCAL_MAX_CONCURRENCY: positiveInt(10_000).default(8),
  /** Default in-flight caps of one account (a user or a team), by media kind; an admin overrides them per account. */
  CAPACITY_ACCOUNT_MAX_VIDEO: positiveInt(10_000).default(4),
  CAPACITY_ACCOUNT_MAX_IMAGE: positiveInt(10_000).default(16),
  /** A waiting generation's priority within its account grows by 1 per this many seconds (against starvation). */
  CAPACITY_AGING_SECONDS: positiveInt(86_400).default(60),
  /**
   * A waiting generation looks at the queue itself this often, should the word of its grant be lost
   * (the reconciler's pass, every minute, grants what a lost release left free).
   */
  CAPACITY_RECHECK_MS: z.coerce.number().int().min(100).max(600_000).default(60_000),
  /** Longest wait for a slot; then the generation fails (`capacity_timeout`) and is refunded. */
  CAPACITY_MAX_WAIT_SECONDS: positiveInt(7 * 86_400).default(6 * 3600),
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
  /** Largest upload (POST /v1/uploads) and largest image copied from a client's URL. */
  UPLOAD_MAX_BYTES: positiveInt(200 * 1024 * 1024).default(20 * 1024 * 1024),
  /** Largest input image in pixels (width × height), against decompression bombs. */
  UPLOAD_MAX_PIXELS: positiveInt(400_000_000).default(40_000_000),
  /** Uploads no generation uses are removed this long after they were made. */
  UPLOAD_RETENTION_HOURS: positiveInt(24 * 365).default(72),
  /**
   * How a provider gets an input image: `provider` (default) uploads it to fal's storage or to
   * Replicate; `signed-url` hands it a signed Velro URL instead (needs a public https VELRO_PUBLIC_URL).
   */
  INPUT_IMAGE_DELIVERY: z.enum(['provider', 'signed-url']).default('provider'),
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
   * Development relaxations, each off unless set, whatever NODE_ENV says (`npm start` and the tests
   * turn them on): webhooks to loopback, private, link-local... addresses; webhooks over plain http;
   * provider outputs downloaded from loopback (http or https, any port).
   */
  WEBHOOK_ALLOW_PRIVATE_URLS: flag,
  WEBHOOK_ALLOW_HTTP: flag,
  PROVIDER_OUTPUT_ALLOW_LOOPBACK: flag,
  /** When set, GET /metrics requires `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: optionalText,
  /** The worker's /metrics (Velro's and the Temporal SDK's, worker/metrics-server.ts); 0 turns it off. */
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /** Loopback by default: set 0.0.0.0 where Prometheus scrapes from another host or container. */
  WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** `npm run cluster`: the port of its round-robin proxy in front of the API replicas (0: any free one). */
  CLUSTER_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** `npm run cluster`: where it keeps Postgres, the logins and the replicas' data between runs. */
  CLUSTER_DATA_DIR: z.string().trim().min(1).default('.data-cluster'),
  /** `smtp://user:pass@host:587` or `smtps://…:465`: team invitations are e-mailed through it; unset, none are. */
  SMTP_URL: optionalText.pipe(
    z
      .url({ protocol: /^smtps?$/, hostname: /^[^\s]+$/, message: 'must be an smtp:// or smtps:// URL' })
      .optional(),
  ),
  /** The From of the e-mails Velro sends: `Name <address>` or a bare address. */
  SMTP_FROM: optionalText
    .pipe(
      z
        .string()
        .regex(
          /^([^<>]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/,
          'must be `Name <address>` or an address',
        )
        .optional(),
    )
    .transform((v) => v ?? 'Velro <no-reply@velro.invalid>'),
  /** Time limit of sending one e-mail (connect, greeting, each reply); past it the send counts as failed. */
  SMTP_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
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
  if (config.INPUT_IMAGE_DELIVERY === 'signed-url' && !config.VELRO_PUBLIC_URL?.startsWith('https://')) {
    throw new ConfigError(
      'Invalid configuration:\n  INPUT_IMAGE_DELIVERY: signed-url needs VELRO_PUBLIC_URL, an https URL providers can reach',
    );
  }
  try {
    parseFalEndpoints(config.FAL_ENDPOINTS);
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  FAL_ENDPOINTS: ${(err as Error).message}`);
  }
  const secretProblem = config.NODE_ENV === 'production' ? jwtSecretProblem(config.JWT_SECRET) : undefined;
  if (secretProblem) {
    throw new ConfigError(
      `Invalid configuration:\n  JWT_SECRET: ${secretProblem}; in production it must be at least 256 ` +
        'random bits: make one with `openssl rand -base64 48`',
    );
  }
  return { ...config, dataDir: path.resolve(config.VELRO_DATA_DIR) };
}

/** Which provider generations go to: forced by VELRO_PROVIDER, else the first one with a key, else local. */
export function activeProvider(config: Config): ProviderName {
  if (config.VELRO_PROVIDER) return config.VELRO_PROVIDER;
  if (config.FAL_KEY) return 'fal';
  if (config.REPLICATE_API_TOKEN) return 'replicate';
  return 'local';
}

export function publicUrl(config: Config): string {
  return (config.VELRO_PUBLIC_URL ?? `http://localhost:${config.PORT}`).replace(/\/$/, '');
}
