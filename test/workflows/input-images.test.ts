// The workflow's input-image step (behind the 'input-images' patch) on the real Temporal dev
// server with stub activities: it runs before submit, only for inputs with an image, what it
// resolves reaches the provider calls (inline data URIs only the submit), and its failure refunds.
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationInput } from '../../workflows/definitions';
import { progressQuery } from '../../workflows/definitions';
import { testStack } from '../support/context';
import { generationInput, StubActivities, StubWorkflows } from '../support/generation-stubs';

let temporal: StubWorkflows;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const stack = testStack();
  temporal = await StubWorkflows.connect(stack.temporalAddress, {
    workflowBundle: { codePath: stack.workflowBundlePath },
    taskQueuePrefix: 'input-images-test',
  });
});

afterAll(async () => {
  await temporal?.close();
});

/** Stub activities plus a resolveInputImages stub that records its calls among the others. */
function withResolver(
  resolve: (input: GenerationInput) => Promise<Record<string, string>>,
  overrides: ConstructorParameters<typeof StubActivities>[0] = {},
) {
  const stubs = new StubActivities(overrides);
  const resolves: GenerationInput[] = [];
  const order: string[] = [];
  Object.assign(stubs.activities, {
    resolveInputImages: async (input: GenerationInput) => {
      resolves.push(input);
      order.push(`resolve:${stubs.calls.length}`);
      return resolve(input);
    },
  });
  return { stubs, resolves, order };
}

const kling = (input: Record<string, unknown>) =>
  generationInput({
    model: 'kling-v2.1-master',
    provider: 'replicate',
    input: { prompt: 'the cat walks away', ...input },
  });

describe('GenerationWorkflow: input images', () => {
  it('resolves the images after admission and before submit; submit sees them, the polls only the non-inline ones', async () => {
    const input = kling({
      image_url: 'upload:0b8a2c7e-0000-4000-8000-000000000001',
      end_image_url: 'https://x.test/e.png',
    });
    const gate = { open: () => undefined as void };
    const opened = new Promise<void>((r) => (gate.open = r));
    let inResolve!: () => void;
    const resolving = new Promise<void>((r) => (inResolve = r));
    const { stubs, resolves, order } = withResolver(async () => {
      inResolve();
      await opened;
      return { image_url: 'data:image/png;base64,AAAA', end_image_url: 'https://files.test/e' };
    });

    await temporal.withWorker(stubs, async (taskQueue) => {
      const { handle } = await temporal.submit(taskQueue, input);
      await resolving;
      expect(await handle.query(progressQuery)).toMatchObject({
        status: 'running',
        stage: 'preparing inputs',
      });
      gate.open();
      expect((await handle.result()).status).toBe('succeeded');
    });

    expect(resolves).toEqual([input]);
    // Called once admission had run and the provider slot was granted, before anything else.
    expect(order).toEqual(['resolve:2']);
    expect(stubs.names().slice(0, 3)).toEqual(['admitGeneration', 'requestCapacity', 'submitToProvider']);
    expect(stubs.argsOf('submitToProvider')).toEqual([
      [
        {
          ...input,
          input: {
            ...input.input,
            image_url: 'data:image/png;base64,AAAA',
            end_image_url: 'https://files.test/e',
          },
        },
      ],
    ]);
    // The data URI stays out of every later call (and so out of the history once per poll).
    const job = {
      ...input,
      input: { ...input.input, end_image_url: 'https://files.test/e' },
      requestId: `request-${input.generationId}`,
    };
    expect(stubs.argsOf('checkProvider')).toEqual([[job]]);
    expect(stubs.argsOf('storeOutputs')).toEqual([[job]]);
  });

  it('does not run the step for an input without an image', async () => {
    const input = kling({});
    const { stubs, resolves } = withResolver(async () => ({}));
    await temporal.withWorker(stubs, async (taskQueue) => {
      const { handle } = await temporal.submit(taskQueue, input);
      expect((await handle.result()).status).toBe('succeeded');
    });
    expect(resolves).toEqual([]);
    expect(stubs.argsOf('submitToProvider')).toEqual([[input]]);
  });

  it('fails and refunds when an image cannot be resolved (invalid_input), without submitting or retrying', async () => {
    const input = kling({ image_url: 'https://x.test/gone.png' });
    const { stubs, resolves } = withResolver(async () => {
      throw ApplicationFailure.nonRetryable('image_url: the URL answered 404', 'invalid_input');
    });
    await temporal.withWorker(stubs, async (taskQueue) => {
      const { handle } = await temporal.submit(taskQueue, input);
      expect(await handle.result()).toEqual({
        status: 'failed',
        error: { code: 'invalid_input', message: 'image_url: the URL answered 404' },
        assetIds: [],
      });
    });
    expect(resolves).toHaveLength(1);
    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'releaseCapacity',
      'failGeneration',
      'createWebhookEvent',
    ]);
    expect(stubs.argsOf('failGeneration')).toEqual([
      [
        {
          userId: input.userId,
          generationId: input.generationId,
          status: 'failed',
          error: { code: 'invalid_input', message: 'image_url: the URL answered 404' },
        },
      ],
    ]);
  });

  it('retries a transient failure a bounded number of times (5), then fails and refunds', async () => {
    const input = kling({ image_url: 'https://x.test/flaky.png' });
    const { stubs, resolves } = withResolver(async () => {
      throw ApplicationFailure.retryable('image_url: HTTP 503', 'input_unavailable');
    });
    await temporal.withWorker(stubs, async (taskQueue) => {
      const { handle } = await temporal.submit(taskQueue, input);
      expect(await handle.result()).toMatchObject({ status: 'failed', error: { code: 'input_unavailable' } });
    });
    expect(resolves).toHaveLength(5);
    expect(stubs.names()).not.toContain('submitToProvider');
  }, 60_000);
});
