import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { ReconcileReport } from '../activities/reconciliation';

const { reconcileLedger } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 3, initialInterval: '5 seconds' },
});

export const RECONCILER_SCHEDULE_ID = 'velro-ledger-reconciler';

/** One reconciliation pass; a Schedule starts it every minute, and each run shows in the Temporal UI. */
export async function LedgerReconcilerWorkflow(): Promise<ReconcileReport> {
  return reconcileLedger();
}
