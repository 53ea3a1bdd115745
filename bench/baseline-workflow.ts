// The same-run ceilings of the generations bench, in one workflow bundle: the trivial workflow, and
// a bare Update-with-Start whose update answers once a local activity has done one Postgres INSERT
// (what a generation's admission is, without Velro's own work around it).
import {
  allHandlersFinished,
  condition,
  defineUpdate,
  proxyLocalActivities,
  setHandler,
} from '@temporalio/workflow';
import type { BaselineActivities } from './baseline-activity';

export { TrivialWorkflow } from './trivial-workflow';

export const baselineAdmittedUpdate = defineUpdate<string>('admitted');

const { insertBaselineRow } = proxyLocalActivities<BaselineActivities>({ startToCloseTimeout: '10 seconds' });

export async function BareAdmissionWorkflow(id: string): Promise<string> {
  const admitted: { row?: string } = {};
  setHandler(baselineAdmittedUpdate, async () => {
    await condition(() => admitted.row !== undefined);
    return admitted.row!;
  });
  admitted.row = await insertBaselineRow(id);
  await condition(allHandlersFinished);
  return admitted.row;
}
