// The Worker Deployment calls behind `npm run deploy` (README, Rolling out), on the client's gRPC.
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const RPC_TIMEOUT_MS = 10_000;
const IDENTITY = 'velro-deploy';

export interface DeploymentTarget {
  connection: Connection;
  namespace: string;
  deploymentName: string;
}

export interface BuildStatus {
  buildId: string;
  /** current, ramping, draining (pinned work left), drained (none left), inactive (never current). */
  status: string;
  createdAt?: Date;
}

export interface DeploymentStatus {
  currentBuildId?: string;
  builds: BuildStatus[];
}

const rpc = <T>(connection: Connection, call: () => Promise<T>) =>
  connection.withDeadline(Date.now() + RPC_TIMEOUT_MS, call);

/**
 * Makes `buildId` the build new generations start on; returns the build that was current before
 * (undefined: unversioned workers were). Refused while no worker of that build has polled yet.
 */
export async function setCurrentBuild(
  target: DeploymentTarget,
  buildId: string,
): Promise<string | undefined> {
  const { connection, namespace, deploymentName } = target;
  const res = await rpc(connection, () =>
    connection.workflowService.setWorkerDeploymentCurrentVersion({
      namespace,
      deploymentName,
      buildId,
      identity: IDENTITY,
    }),
  );
  return res.previousDeploymentVersion?.buildId || undefined;
}

export async function describeDeployment(target: DeploymentTarget): Promise<DeploymentStatus> {
  const { connection, namespace, deploymentName } = target;
  const res = await rpc(connection, () =>
    connection.workflowService.describeWorkerDeployment({ namespace, deploymentName }),
  );
  const info = res.workerDeploymentInfo;
  const builds = (info?.versionSummaries ?? []).map((v) => ({
    buildId: v.deploymentVersion?.buildId ?? '',
    status: statusName(v.status),
    createdAt: v.createTime?.seconds == null ? undefined : new Date(Number(v.createTime.seconds) * 1000),
  }));
  return { currentBuildId: info?.routingConfig?.currentDeploymentVersion?.buildId || undefined, builds };
}

function statusName(status: temporal.api.enums.v1.WorkerDeploymentVersionStatus | null | undefined): string {
  const name = temporal.api.enums.v1.WorkerDeploymentVersionStatus[status ?? 0] ?? 'UNSPECIFIED';
  return name.replace('WORKER_DEPLOYMENT_VERSION_STATUS_', '').toLowerCase();
}
