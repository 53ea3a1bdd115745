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
  FAL_JWKS_URL: z.url().default('https://rest.alpha.fal.ai/.well-known/jwks.json'),
  REPLICATE_API_TOKEN: optionalText,
  REPLICATE_API_URL: z.url().default('https://api.replicate.com'),
  VELRO_PROVIDER: z.enum(['local', 'fal', 'replicate']).optional(),
  STORAGE_DRIVER: z.enum(['fs', 's3']).default('fs'),
  LOCAL_PROVIDER_LATENCY_MS: z.coerce.number().int().min(0).max(600_000).default(1500),
  LOCAL_PROVIDER_FAILURE_RATE: rate.default(0),
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
