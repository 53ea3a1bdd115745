import { existsSync } from 'node:fs';
import path from 'node:path';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { assetSigningKey } from '../lib/auth/signing-key';
import { capacityLimits } from '../lib/capacity/limits';
import { publicUrl, type Config } from '../lib/config';
import { firstPollIntervals } from '../lib/generations/poll';
import { PROJECT_ROOT } from '../lib/paths';
import { webhookUrlPolicy } from '../lib/webhooks/url-policy';

// A folder: the bundler resolves its index (.ts from the sources, .js from dist/).
export const WORKFLOWS_PATH = path.resolve(__dirname, '../workflows');
/** Built by `npm run build`; production workers load it instead of bundling at start-up. */
export const PREBUILT_BUNDLE = path.join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');

export interface WorkerSetup {
  config: Config;
  connection: NativeConnection;
  deps: ActivityDeps;
  /** A prebuilt bundle (tests build one per run); else the production bundle if built; else bundle now. */
  workflowBundlePath?: string;
  overrides?: Partial<WorkerOptions>;
}

export async function createWorker(setup: WorkerSetup): Promise<Worker> {
  // Development bundles the current sources, so a stale build never runs old workflow code.
  const usePrebuilt = setup.config.NODE_ENV === 'production' && existsSync(PREBUILT_BUNDLE);
  const bundlePath =
    setup.workflowBundlePath ??
    setup.config.TEMPORAL_WORKFLOW_BUNDLE ??
    (usePrebuilt ? PREBUILT_BUNDLE : undefined);
  return Worker.create({
    connection: setup.connection,
    namespace: setup.config.TEMPORAL_NAMESPACE,
    taskQueue: setup.config.TEMPORAL_TASK_QUEUE,
    ...(bundlePath ? { workflowBundle: { codePath: bundlePath } } : { workflowsPath: WORKFLOWS_PATH }),
    activities: createActivities(setup.deps),
    // Let in-flight activities finish on SIGTERM; whatever is cut off is retried elsewhere.
    shutdownGraceTime: '10 seconds',
    ...workerTuning(setup.config),
    ...workerVersioning(setup.config),
    ...setup.overrides,
  });
}

/**
 * With TEMPORAL_BUILD_ID set, the worker joins its Worker Deployment as that build (README, Rolling
 * out); without it, it stays unversioned. Workflows that declare no behaviour of their own
 * (workflows/*) move to the current build at their next task, so their changes still need patched().
 */
export function workerVersioning(config: Config): Partial<WorkerOptions> {
  if (!config.TEMPORAL_BUILD_ID) return {};
  return {
    workerDeploymentOptions: {
      version: { deploymentName: config.TEMPORAL_DEPLOYMENT_NAME, buildId: config.TEMPORAL_BUILD_ID },
      useWorkerVersioning: true,
      defaultVersioningBehavior: 'AUTO_UPGRADE',
    },
  };
}

/** The worker's slots and cache (README, Performance: what each one bounds). */
function workerTuning(config: Config): Partial<WorkerOptions> {
  return {
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentLocalActivityExecutions: config.WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES,
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
  };
}

export function activityDeps(
  config: Config,
  {
    signalGranted,
    ...parts
  }: Pick<
    ActivityDeps,
    'db' | 'systemDb' | 'storage' | 'providers' | 'workflowState' | 'stoppedGenerations' | 'metrics'
  > & {
    /** Without it, granted generations learn of their slot at their next check (CAPACITY_RECHECK_MS). */
    signalGranted?: ActivityDeps['capacity']['signalGranted'];
  },
): ActivityDeps {
  return {
    ...parts,
    maxOutputBytes: 512 * 1024 * 1024,
    downloadTimeoutMs: 5 * 60 * 1000,
    allowLoopbackOutputs: config.PROVIDER_OUTPUT_ALLOW_LOOPBACK,
    outputHosts: config.PROVIDER_OUTPUT_HOSTS,
    pollInitialMs: firstPollIntervals(config),
    uploadRetentionHours: config.UPLOAD_RETENTION_HOURS,
    webhooks: webhookDeps(config),
    inputImages: {
      delivery: config.INPUT_IMAGE_DELIVERY,
      maxBytes: config.UPLOAD_MAX_BYTES,
      maxPixels: config.UPLOAD_MAX_PIXELS,
      fetchTimeoutMs: 30_000,
    },
    capacity: {
      limits: capacityLimits(config),
      recheckMs: config.CAPACITY_RECHECK_MS,
      maxWaitSeconds: config.CAPACITY_MAX_WAIT_SECONDS,
      signalGranted: signalGranted ?? (async () => {}),
    },
  };
}

/** Outgoing webhook settings from the configuration. */
export function webhookDeps(config: Config): ActivityDeps['webhooks'] {
  let key: Promise<Buffer> | undefined;
  return {
    publicUrl: publicUrl(config),
    // Derived once, on first use; a failure is not kept, the next delivery tries again.
    assetSigningKey: () =>
      (key ??= assetSigningKey(config).catch((err: unknown) => {
        key = undefined;
        throw err;
      })),
    assetUrlTtlSeconds: config.ASSET_URL_TTL_SECONDS,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    retry: {
      initialMs: config.WEBHOOK_RETRY_INITIAL_MS,
      maxIntervalMs: Math.max(config.WEBHOOK_RETRY_MAX_INTERVAL_MS, config.WEBHOOK_RETRY_INITIAL_MS),
      maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
    },
    urlPolicy: webhookUrlPolicy(config),
  };
}
