import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { RECONCILER_SCHEDULE_ID } from '../workflows/reconciler';

/** Creates the every-minute reconciler schedule unless it exists (every worker calls this at start). */
export async function ensureReconcilerSchedule(
  client: Client,
  taskQueue: string,
): Promise<'created' | 'exists'> {
  try {
    await client.schedule.create({
      scheduleId: RECONCILER_SCHEDULE_ID,
      spec: { intervals: [{ every: '1 minute' }] },
      action: {
        type: 'startWorkflow',
        workflowType: 'LedgerReconcilerWorkflow',
        workflowId: 'ledger-reconciler',
        taskQueue,
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: {
        note: 'Expires lapsed grants, releases abandoned reservations, reports unsettled generations.',
      },
    });
    return 'created';
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return 'exists';
    throw err;
  }
}
