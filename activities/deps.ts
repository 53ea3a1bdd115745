import type { CapacityLimits } from '../lib/capacity/store';
import type { Db, SystemDb } from '../lib/db/pool';
import type { Provider, ProviderName } from '../lib/providers/provider';
import type { WorkerMetrics } from '../lib/metrics/worker-metrics';
import type { Storage } from '../lib/storage/storage';
import type { LookupAll, WebhookUrlPolicy } from '../lib/webhooks/url-policy';
import type { WebhookRetryPolicy } from '../workflows/definitions';

/** Outgoing webhooks (activities/webhooks.ts). */
export interface WebhookDeps {
  /** Base of the signed output URLs in a webhook's generation (VELRO_PUBLIC_URL). */
  publicUrl: string;
  /** The key the API signs asset URLs with (the same one, so the URLs in a webhook work). */
  assetSigningKey(): Promise<Buffer>;
  assetUrlTtlSeconds: number;
  /** Time limit of one delivery attempt's HTTP request. */
  timeoutMs: number;
  retry: WebhookRetryPolicy;
  urlPolicy: WebhookUrlPolicy;
  /** Name resolution for delivery targets (tests pin it); the system resolver by default. */
  lookup?: LookupAll;
}

/** Input images (activities/input-images.ts). */
export interface InputImageDeps {
  /** INPUT_IMAGE_DELIVERY: upload to the provider, or hand it a signed Velro URL. */
  delivery: 'provider' | 'signed-url';
  /** Largest image copied from a client's URL (UPLOAD_MAX_BYTES). */
  maxBytes: number;
  /** Largest image in pixels (UPLOAD_MAX_PIXELS). */
  maxPixels: number;
  /** Time limit for copying one client's image URL. */
  fetchTimeoutMs: number;
}

/** Provider capacity (activities/capacity.ts). */
export interface CapacityDeps {
  limits: CapacityLimits;
  /** CAPACITY_RECHECK_MS: a waiter's own check, should word of its grant be lost. */
  recheckMs: number;
  /** CAPACITY_MAX_WAIT_SECONDS. */
  maxWaitSeconds: number;
  /** Tells these generations' workflows they were granted a slot (a signal each). */
  signalGranted(generationIds: string[]): Promise<void>;
}

export interface ActivityDeps {
  /** The velro_app login: every activity that acts for one user. */
  db: Db;
  /** The velro_system login: the reconciler's paths that act across users. */
  systemDb: SystemDb;
  storage: Storage;
  providers: Record<ProviderName, Provider | undefined>;
  /** Largest output Velro will download from a provider. */
  maxOutputBytes: number;
  /** Time limit for one output download. */
  downloadTimeoutMs: number;
  /** Whether provider output URLs on loopback are accepted (PROVIDER_OUTPUT_ALLOW_LOOPBACK). */
  allowLoopbackOutputs: boolean;
  /** Hosts provider outputs may be downloaded from. */
  outputHosts: string[];
  /** First interval between provider polls, by provider (lib/generations/poll.ts); admission answers it. */
  pollInitialMs: Record<ProviderName, number>;
  /** Whether a workflow is still running (the reconciler asks before releasing a reservation). */
  workflowState(workflowId: string): Promise<'running' | 'closed' | 'missing'>;
  /** Generations whose workflow closed since then without completing (an operator's terminate, say). */
  stoppedGenerations(since: Date): Promise<{ generationId: string; status: string }[]>;
  /** Uploads no generation uses are purged this long after they were made (UPLOAD_RETENTION_HOURS). */
  uploadRetentionHours: number;
  webhooks: WebhookDeps;
  inputImages: InputImageDeps;
  capacity: CapacityDeps;
  /** Outcomes and provider errors, for the worker's /metrics (worker/metrics-server.ts); none counted without it. */
  metrics?: WorkerMetrics;
}
