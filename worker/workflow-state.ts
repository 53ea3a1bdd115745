import { WorkflowNotFoundError, type Client } from '@temporalio/client';

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
