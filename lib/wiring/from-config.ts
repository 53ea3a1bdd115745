import path from 'node:path';
import { parseFalEndpoints } from '../catalog/fal-endpoints';
import { publicUrl, type Config } from '../config';
import { createPool, createSystemPool, type Db, type SystemDb } from '../db/pool';
import { noMailer, smtpMailer, type Mailer } from '../mail/mailer';
import { FalProvider } from '../providers/fal';
import { LocalProvider } from '../providers/local-provider';
import { storageInputReader } from '../providers/local/storage-input';
import { ReplicateProvider } from '../providers/replicate';
import type { Provider, ProviderName } from '../providers/provider';
import { FsStorage } from '../storage/fs-storage';
import { S3Storage, s3OptionsFromConfig } from '../storage/s3-storage';
import type { Storage } from '../storage/storage';

// The shared pieces the API and the worker both build from configuration.

/** A pool on the velro_app login (DATABASE_APP_URL). */
export function createDb(config: Config, appUrl: string, name: string, onError?: (e: Error) => void): Db {
  return createPool(
    { connectionString: appUrl, max: config.DATABASE_POOL_MAX, applicationName: name },
    onError,
  );
}

/** A pool on the velro_system login (DATABASE_SYSTEM_URL). */
export function createSystemDb(
  config: Config,
  systemUrl: string,
  name: string,
  onError?: (e: Error) => void,
): SystemDb {
  return createSystemPool(
    { connectionString: systemUrl, max: config.DATABASE_POOL_MAX, applicationName: name },
    onError,
  );
}

export function createStorage(config: Config): Storage {
  if (config.STORAGE_DRIVER === 's3') return new S3Storage(s3OptionsFromConfig(config));
  return new FsStorage(path.join(config.dataDir, 'storage'));
}

/** E-mail through SMTP_URL, or none without it. */
export function createMailer(config: Config): Mailer {
  if (!config.SMTP_URL) return noMailer;
  return smtpMailer({ url: config.SMTP_URL, from: config.SMTP_FROM, timeoutMs: config.SMTP_TIMEOUT_MS });
}

/** The route provider webhooks arrive on (the API serves it at VELRO_PUBLIC_URL). */
export function providerWebhookUrl(config: Config, provider: Exclude<ProviderName, 'local'>): string {
  return `${publicUrl(config)}/v1/provider-webhooks/${provider}`;
}

/**
 * Every provider the configuration enables: local always, fal with FAL_KEY, Replicate with
 * REPLICATE_API_TOKEN. Webhooks are asked for only when VELRO_PUBLIC_URL says where Velro can be
 * reached (and, for Replicate, when its signing secret is known); polling finishes jobs either way.
 * The local renderer reads its input images from `storage`.
 */
export function createProviders(
  config: Config,
  storage: Storage,
): Record<ProviderName, Provider | undefined> {
  const reachable = config.VELRO_PUBLIC_URL !== undefined;
  return {
    local: new LocalProvider({
      latencyMs: config.LOCAL_PROVIDER_LATENCY_MS,
      failureRate: config.LOCAL_PROVIDER_FAILURE_RATE,
      readInput: storageInputReader(storage, config.UPLOAD_MAX_BYTES),
      maxInputPixels: config.UPLOAD_MAX_PIXELS,
    }),
    fal: config.FAL_KEY
      ? new FalProvider({
          key: config.FAL_KEY,
          queueUrl: config.FAL_QUEUE_URL,
          jwksUrl: config.FAL_JWKS_URL,
          storageUrl: config.FAL_STORAGE_URL,
          // Checked already by loadConfig; parsed here for the effective endpoint ids.
          endpoints: parseFalEndpoints(config.FAL_ENDPOINTS),
          webhookUrl: reachable ? providerWebhookUrl(config, 'fal') : undefined,
          timeoutMs: config.PROVIDER_HTTP_TIMEOUT_MS,
        })
      : undefined,
    replicate: config.REPLICATE_API_TOKEN
      ? new ReplicateProvider({
          token: config.REPLICATE_API_TOKEN,
          apiUrl: config.REPLICATE_API_URL,
          webhookUrl:
            reachable && config.REPLICATE_WEBHOOK_SECRET
              ? providerWebhookUrl(config, 'replicate')
              : undefined,
          webhookSecret: config.REPLICATE_WEBHOOK_SECRET,
          timeoutMs: config.PROVIDER_HTTP_TIMEOUT_MS,
          dataUriMaxBytes: config.REPLICATE_DATA_URI_MAX_BYTES,
        })
      : undefined,
  };
}
