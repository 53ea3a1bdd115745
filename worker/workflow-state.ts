import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { capacityGrantedSignal, generationWorkflowId } from '../workflows/definitions';

/** Whether a workflow is running, closed, or unknown to Temporal. */
export function workflowStateOf(client: Client) {
  return async (workflowId: string): Promise<'running' | 'closed' | 'missing'> => {
    try {
      const { status } = await client.workflow.getHandle(workflowId).describe();
      return status.name === 'RUNNING' ? 'running' : 'closed';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 'missing';
      throw err;
    }
  };
}

/** A generation whose workflow closed without completing: terminated, timed out, failed or canceled. */
export interface StoppedGeneration {
  generationId: string;
  status: 'terminated' | 'timed_out' | 'failed' | 'canceled';
}

const GENERATION_ID = /^generation-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * Generation workflows that closed since `since` without completing, from one visibility query. A
 * generation's own code always completes its workflow (also when it fails or is canceled), so these
 * are the ones an operator terminated, or that timed out or failed outside that code: nothing of
 * theirs ran their refund.
 */
export function stoppedGenerationsOf(client: Client, limit = 1000) {
  return async (since: Date): Promise<StoppedGeneration[]> => {
    const query =
      `WorkflowType = 'GenerationWorkflow' AND CloseTime > '${since.toISOString()}' AND ` +
      `ExecutionStatus IN ('Terminated', 'TimedOut', 'Failed', 'Canceled')`;
    const stopped: StoppedGeneration[] = [];
    for await (const execution of client.workflow.list({ query })) {
      const id = GENERATION_ID.exec(execution.workflowId)?.[1];
      const status = STATUS[execution.status.name];
      if (id && status) stopped.push({ generationId: id, status });
      if (stopped.length >= limit) break;
    }
    return stopped;
  };
}

const STATUS: Partial<Record<string, StoppedGeneration['status']>> = {
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed_out',
  FAILED: 'failed',
  CANCELLED: 'canceled',
};

/** Signals each generation's workflow that it holds a slot now; one already closed is skipped. */
export function signalCapacityGrantedOf(client: Client) {
  return async (generationIds: string[]): Promise<void> => {
    const results = await Promise.allSettled(
      generationIds.map((id) =>
        client.workflow.getHandle(generationWorkflowId(id)).signal(capacityGrantedSignal),
      ),
    );
    const failed = results.find(
      (r): r is PromiseRejectedResult =>
        r.status === 'rejected' && !(r.reason instanceof WorkflowNotFoundError),
    );
    if (failed) throw failed.reason;
  };
}
