// Determinism: the current workflow code must replay the histories recorded from earlier runs, as a
// worker does when it picks up a generation started before a deploy. Fixtures are written by
// test/support/record-histories.ts; re-record them only after an intentional change.
import { readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { historyFromFixture, HISTORIES_DIR, SCENARIOS } from '../support/record-histories';
import { testStack } from '../support/context';

const PROJECT_ROOT = path.resolve(__dirname, '../..');
const WORKFLOWS_DIR = path.join(PROJECT_ROOT, 'workflows');

const fixtures = readdirSync(HISTORIES_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

async function loadHistory(file: string) {
  return historyFromFixture(JSON.parse(await fs.readFile(path.join(HISTORIES_DIR, file), 'utf8')));
}

beforeAll(() => {
  // Replays of the reordered workflow fail on purpose: only errors are shown.
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
  });
});

describe('replaying recorded GenerationWorkflow histories', () => {
  it('has a fixture for every recorded scenario', () => {
    expect(fixtures).toEqual(
      Object.keys(SCENARIOS)
        .map((name) => `${name}.json`)
        .sort(),
    );
  });

  it.each(fixtures)('replays %s on the current workflow code', async (file) => {
    await Worker.runReplayHistory(
      { workflowBundle: { codePath: testStack().workflowBundlePath } },
      await loadHistory(file),
      file,
    );
  });

  describe('with a copy of the workflow that schedules another activity where it stores outputs', () => {
    let scratch: string;
    let code: string;

    beforeAll(async () => {
      // A scratch copy of workflows/, outside the project so no one else's tsc or eslint sees it.
      scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-reordered-workflow-'));
      const copy = path.join(scratch, 'workflows');
      await fs.cp(WORKFLOWS_DIR, copy, { recursive: true });
      // With lib/ beside it: workflows/definitions.ts imports lib/'s pure modules (search attribute names).
      await fs.cp(path.join(PROJECT_ROOT, 'lib'), path.join(scratch, 'lib'), { recursive: true });
      const file = path.join(copy, 'generation.ts');
      const source = await fs.readFile(file, 'utf8');
      // Schedule a different activity where the outputs are stored: the history no longer matches.
      const reordered = source.replace(
        'const store = () => storeOutputs(',
        'const store = () => (checkProvider as unknown as typeof storeOutputs)(',
      );
      expect(reordered, 'the change no longer applies to workflows/generation.ts').not.toBe(source);
      await fs.writeFile(file, reordered);
      ({ code } = await bundleWorkflowCode({
        workflowsPath: copy,
        logger: new DefaultLogger('WARN'),
        // The copy lives outside the project: resolve @temporalio/* from the project's node_modules.
        webpackConfigHook: (config) => ({
          ...config,
          resolve: {
            ...config.resolve,
            modules: [
              ...(config.resolve?.modules ?? ['node_modules']),
              path.join(PROJECT_ROOT, 'node_modules'),
            ],
          },
        }),
      }));
    }, 120_000);

    afterAll(async () => {
      if (scratch) await fs.rm(scratch, { recursive: true, force: true });
    });

    it('fails to replay the happy path with a DeterminismViolationError', async () => {
      await expect(
        Worker.runReplayHistory({ workflowBundle: { code } }, await loadHistory('happy-path.json')),
      ).rejects.toBeInstanceOf(DeterminismViolationError);
    });

    it('still replays histories that never reach that step', async () => {
      for (const file of ['provider-failure.json', 'cancel.json', 'insufficient-credits.json']) {
        await Worker.runReplayHistory({ workflowBundle: { code } }, await loadHistory(file), file);
      }
    });
  });
});
