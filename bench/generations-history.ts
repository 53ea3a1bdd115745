// What a workflow costs the server, read from its history: events, workflow tasks, activity tasks,
// local activities (markers), timers, search-attribute upserts.
import type { Client } from '@temporalio/client';

export interface HistoryCost {
  events: number;
  workflowTasks: number;
  activityTasks: number;
  localActivities: number;
  timers: number;
  searchAttributeUpserts: number;
  signals: number;
  childWorkflows: number;
}

type HistoryEvent = NonNullable<
  Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']
>[number];

function costOf(events: HistoryEvent[]): HistoryCost {
  const count = (f: (e: HistoryEvent) => unknown) => events.filter((e) => f(e)).length;
  return {
    events: events.length,
    workflowTasks: count((e) => e.workflowTaskCompletedEventAttributes),
    activityTasks: count((e) => e.activityTaskScheduledEventAttributes),
    // The SDK records each local activity's result as this marker.
    localActivities: count((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity'),
    timers: count((e) => e.timerStartedEventAttributes),
    searchAttributeUpserts: count((e) => e.upsertWorkflowSearchAttributesEventAttributes),
    signals: count((e) => e.workflowExecutionSignaledEventAttributes),
    childWorkflows: count((e) => e.startChildWorkflowExecutionInitiatedEventAttributes),
  };
}

/** The mean cost over these closed workflows. */
export async function meanHistoryCost(temporal: Client, workflowIds: string[]): Promise<HistoryCost> {
  const costs = await Promise.all(
    workflowIds.map(async (id) =>
      costOf((await temporal.workflow.getHandle(id).fetchHistory()).events ?? []),
    ),
  );
  const mean = {} as HistoryCost;
  for (const k of Object.keys(costs[0]!) as (keyof HistoryCost)[]) {
    mean[k] = costs.reduce((n, c) => n + c[k], 0) / costs.length;
  }
  return mean;
}
