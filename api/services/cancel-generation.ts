import {
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { cancelUpdate, generationWorkflowId } from '../../workflows/definitions';
import { ApiError } from '../errors';

/** How long a cancel waits for the generation's workflow to take it before answering 503. */
const CANCEL_TIMEOUT_MS = 10_000;

/**
 * Asks a running generation's workflow to cancel. The workflow decides, so the answer is exact: it
 * refuses (409 `not_cancelable`) once the provider has reported success, since from then on the
 * generation is stored and charged. A workflow that has already closed is not an error: the caller
 * reads how it ended.
 */
export async function cancelGeneration(temporal: Client, generationId: string): Promise<void> {
  const handle = temporal.workflow.getHandle(generationWorkflowId(generationId));
  try {
    await temporal.withDeadline(Date.now() + CANCEL_TIMEOUT_MS, () => handle.executeUpdate(cancelUpdate));
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause;
      if (cause instanceof ApplicationFailure && cause.type === 'not_cancelable') {
        throw new ApiError(409, 'not_cancelable', cause.message);
      }
      throw err;
    }
    if (err instanceof WorkflowNotFoundError) return; // closed between the read and the cancel
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isDeadline(err)) {
      throw new ApiError(503, 'unavailable', 'The generation could not be reached in time; try again.', {
        headers: { 'retry-after': '1' },
      });
    }
    throw err;
  }
}

function isDeadline(err: unknown): boolean {
  return (err as { code?: number })?.code === 4; // gRPC DEADLINE_EXCEEDED
}
