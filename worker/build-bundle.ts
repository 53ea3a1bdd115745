import fs from 'node:fs/promises';
import { bundleWorkflowCode, type Logger } from '@temporalio/worker';
import { PREBUILT_BUNDLE, WORKFLOWS_PATH } from './create-worker';

/** Prebuilds the workflow bundle so production workers start without running webpack. */
export async function buildWorkflowBundle(outFile: string, logger?: Logger): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger });
  await fs.writeFile(outFile, code);
}

if (require.main === module) {
  const out = process.argv[2] ?? PREBUILT_BUNDLE;
  buildWorkflowBundle(out).then(
    () => console.log(`workflow bundle written to ${out}`),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
