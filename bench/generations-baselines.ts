// The ceilings measured in the same run, on the same Temporal server, Postgres and worker set-up:
// a plain workflow start, the trivial workflow (rate, latency, history) and a bare Update-with-Start
// whose update waits on a local activity doing one INSERT (bench/baseline-workflow.ts).
import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import { BASELINE_TASK_QUEUE } from './baseline-activity';
import { baselineAdmittedUpdate, type BareAdmissionWorkflow } from './baseline-workflow';
import { meanHistoryCost, type HistoryCost } from './generations-history';
import { atOnce, latencies, type Latencies } from './generations-measure';

export interface Baselines {
  plainStart: Latencies;
  trivialPerSecond: number;
  trivialLatency: Latencies;
  trivialHistory: HistoryCost;
  bareIdle: Latencies;
  barePerSecond: number;
  bareHistory: HistoryCost;
}

const AT_ONCE = 200;

export async function measureBaselines(temporal: Client): Promise<Baselines> {
  // A plain start, nothing runs it (a queue with no worker).
  const starts: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t = performance.now();
    const h = await temporal.workflow.start('TrivialWorkflow', {
      taskQueue: 'bench-nobody',
      workflowId: `start-${randomUUID()}`,
    });
    starts.push(performance.now() - t);
    await h.terminate();
  }

  const trivial = (id = `trivial-${randomUUID()}`) =>
    temporal.workflow
      .execute('TrivialWorkflow', { taskQueue: BASELINE_TASK_QUEUE, workflowId: id })
      .then(() => id);
  const trivialTimes: number[] = [];
  const trivialIds: string[] = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    trivialIds.push(await trivial());
    trivialTimes.push(performance.now() - t);
  }
  const trivialRun = await atOnce(AT_ONCE, () => trivial());

  const bare = async () => {
    const id = `bare-${randomUUID()}`;
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof BareAdmissionWorkflow>(
      'BareAdmissionWorkflow',
      {
        workflowId: id,
        taskQueue: BASELINE_TASK_QUEUE,
        args: [id],
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      },
    );
    await temporal.workflow.executeUpdateWithStart(baselineAdmittedUpdate, { startWorkflowOperation });
    return id;
  };
  const bareTimes: number[] = [];
  const bareIds: string[] = [];
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    bareIds.push(await bare());
    bareTimes.push(performance.now() - t);
  }
  const bareRun = await atOnce(AT_ONCE, () => bare());
  // Their histories once they have closed.
  await Promise.all(bareIds.slice(0, 20).map((id) => temporal.workflow.getHandle(id).result()));

  return {
    plainStart: latencies(starts),
    trivialPerSecond: AT_ONCE / trivialRun.seconds,
    trivialLatency: latencies(trivialTimes),
    trivialHistory: await meanHistoryCost(temporal, trivialIds.slice(0, 20)),
    bareIdle: latencies(bareTimes),
    barePerSecond: AT_ONCE / bareRun.seconds,
    bareHistory: await meanHistoryCost(temporal, bareIds.slice(0, 20)),
  };
}
