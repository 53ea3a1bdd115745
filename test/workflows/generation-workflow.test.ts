// The generation workflow's logic on the real Temporal dev server, with stub activities that record
// every call: no Postgres, no provider, just the order of side effects the workflow asks for.
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderStatus } from '../../lib/providers/provider';
import {
  cancelUpdate,
  progressQuery,
  providerEventSignal,
  StatusKey,
  type GenerationInput,
} from '../../workflows/definitions';
import { testStack } from '../support/context';
import {
  deferred,
  generationInput,
  sequence,
  StubActivities,
  StubWorkflows,
  type ActivityName,
} from '../support/generation-stubs';

let temporal: StubWorkflows;

beforeAll(async () => {
  // Stub activities fail on purpose, and each failure is a worker warning: only errors are shown.
  // (Core's own warnings, e.g. a failing workflow task, are printed regardless.)
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const stack = testStack();
  temporal = await StubWorkflows.connect(stack.temporalAddress, {
    workflowBundle: { codePath: stack.workflowBundlePath },
    taskQueuePrefix: 'workflow-test',
  });
});

afterAll(async () => {
  await temporal?.close();
});

const withWorker = <T>(stubs: StubActivities, fn: (taskQueue: string) => Promise<T>) =>
  temporal.withWorker(stubs, fn);
const submit = (taskQueue: string, input: GenerationInput) => temporal.submit(taskQueue, input);
const start = (taskQueue: string, input: GenerationInput) => temporal.start(taskQueue, input);

async function statusAttribute(handle: WorkflowHandle): Promise<string | undefined> {
  return (await handle.describe()).typedSearchAttributes.get(StatusKey);
}

const running = async (): Promise<ProviderStatus> => ({ state: 'running', logs: [] });

describe('GenerationWorkflow with stub activities', () => {
  it('admits, polls until the provider succeeds, stores the outputs and commits once, reporting progress', async () => {
    const input = generationInput();
    const inSecondPoll = deferred();
    const inThirdPoll = deferred();
    const stubs: StubActivities = new StubActivities({
      checkProvider: sequence<[unknown], ProviderStatus>(
        async () => ({ state: 'queued', queuePosition: 3, logs: ['queued at position 3'] }),
        async () => {
          inSecondPoll.resolve();
          await secondPoll.promise;
          return { state: 'running', logs: ['rendering: 50%'] };
        },
        async () => {
          inThirdPoll.resolve();
          await thirdPoll.promise;
          return { state: 'succeeded', logs: ['rendering: 100%'] };
        },
      ),
    });
    const secondPoll = stubs.gate();
    const thirdPoll = stubs.gate();

    await withWorker(stubs, async (taskQueue) => {
      const { admission, handle } = await submit(taskQueue, input);
      expect(admission).toEqual({ admitted: true, reservationId: `reserve-${input.generationId}` });

      await inSecondPoll.promise;
      expect(await handle.query(progressQuery)).toEqual({
        status: 'running',
        stage: 'waiting for provider',
        queuePosition: 3,
        logs: ['queued at position 3'],
        logCount: 1,
      });
      expect(await statusAttribute(handle)).toBe('running');
      secondPoll.resolve();

      await inThirdPoll.promise;
      expect(await handle.query(progressQuery)).toEqual({
        status: 'running',
        stage: 'waiting for provider',
        queuePosition: null,
        logs: ['queued at position 3', 'rendering: 50%'],
        logCount: 2,
      });
      thirdPoll.resolve();

      expect(await handle.result()).toEqual({
        status: 'succeeded',
        assetIds: [`asset-${input.generationId}-0`, `asset-${input.generationId}-1`],
      });
      expect(await statusAttribute(handle)).toBe('succeeded');
      expect(await handle.query(progressQuery)).toEqual({
        status: 'succeeded',
        stage: 'done',
        queuePosition: null,
        logs: ['queued at position 3', 'rendering: 50%', 'rendering: 100%'],
        logCount: 3,
      });
    });

    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      'checkProvider',
      'checkProvider',
      'checkProvider',
      'releaseCapacity',
      'storeOutputs',
      'completeGeneration',
      'createWebhookEvent',
    ]);
    const job = { ...input, requestId: `request-${input.generationId}` };
    expect(stubs.argsOf('admitGeneration')).toEqual([[input]]);
    expect(stubs.argsOf('submitToProvider')).toEqual([[input]]);
    expect(stubs.argsOf('checkProvider')).toEqual([[job], [job], [job]]);
    expect(stubs.argsOf('storeOutputs')).toEqual([[job]]);
    expect(stubs.argsOf('completeGeneration')).toEqual([
      [{ userId: input.userId, generationId: input.generationId }],
    ]);
  });

  it('refuses a generation the credits do not cover: insufficient_credits, nothing else runs', async () => {
    const input = generationInput();
    const stubs = new StubActivities({
      admitGeneration: async () => {
        throw ApplicationFailure.nonRetryable('available 40 < 50', 'InsufficientCredits');
      },
    });

    await withWorker(stubs, async (taskQueue) => {
      const { admission, handle } = await submit(taskQueue, input);
      expect(admission).toEqual({
        admitted: false,
        code: 'insufficient_credits',
        message: 'available 40 < 50',
      });
      expect(await handle.result()).toEqual({
        status: 'failed',
        error: { code: 'insufficient_credits', message: 'available 40 < 50' },
        assetIds: [],
      });
      expect(await statusAttribute(handle)).toBe('failed');
    });

    expect(stubs.names()).toEqual(['admitGeneration']);
  });

  it('answers unavailable when admission keeps failing, after its bounded retries, and runs nothing else', async () => {
    const input = generationInput();
    const stubs = new StubActivities({
      admitGeneration: async () => {
        throw new Error('connection refused');
      },
    });

    await withWorker(stubs, async (taskQueue) => {
      const { admission, handle } = await submit(taskQueue, input);
      expect(admission).toMatchObject({ admitted: false, code: 'unavailable' });
      expect(await handle.result()).toMatchObject({
        status: 'failed',
        error: { code: 'unavailable' },
        assetIds: [],
      });
    });

    expect(stubs.names()).toEqual(['admitGeneration', 'admitGeneration', 'admitGeneration']);
  });

  it('refunds when the provider reports a failure, cancelling the request there first', async () => {
    const input = generationInput();
    const stubs = new StubActivities({
      checkProvider: async () => ({
        state: 'failed',
        logs: ['prompt refused'],
        error: { code: 'content_policy', message: 'The prompt was refused.' },
      }),
    });

    await withWorker(stubs, async (taskQueue) => {
      const { admission, handle } = await submit(taskQueue, input);
      expect(admission.admitted).toBe(true);
      expect(await handle.result()).toEqual({
        status: 'failed',
        error: { code: 'content_policy', message: 'The prompt was refused.' },
        assetIds: [],
      });
      expect(await statusAttribute(handle)).toBe('failed');
      expect(await handle.query(progressQuery)).toMatchObject({ status: 'failed', stage: 'refunded' });
    });

    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      'checkProvider',
      'cancelAtProvider',
      'releaseCapacity',
      'failGeneration',
      'createWebhookEvent',
    ]);
    expect(stubs.argsOf('cancelAtProvider')).toEqual([
      [{ ...input, requestId: `request-${input.generationId}` }],
    ]);
    expect(stubs.argsOf('failGeneration')).toEqual([
      [
        {
          userId: input.userId,
          generationId: input.generationId,
          status: 'failed',
          error: { code: 'content_policy', message: 'The prompt was refused.' },
        },
      ],
    ]);
  });

  it('refunds with the code of a non-retryable activity failure, without retrying it', async () => {
    const input = generationInput();
    const stubs = new StubActivities({
      storeOutputs: async () => {
        throw ApplicationFailure.nonRetryable('gone', 'output_unavailable');
      },
    });

    await withWorker(stubs, async (taskQueue) => {
      const handle = await start(taskQueue, input);
      expect(await handle.result()).toEqual({
        status: 'failed',
        error: { code: 'output_unavailable', message: 'gone' },
        assetIds: [],
      });
    });

    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      'checkProvider',
      'releaseCapacity',
      'storeOutputs',
      'cancelAtProvider',
      'failGeneration',
      'createWebhookEvent',
    ]);
    expect(stubs.argsOf('failGeneration')).toEqual([
      [
        {
          userId: input.userId,
          generationId: input.generationId,
          status: 'failed',
          error: { code: 'output_unavailable', message: 'gone' },
        },
      ],
    ]);
  });

  it('gives up on a provider that does not finish by the deadline: provider_timeout, cancelled there', async () => {
    const input = generationInput({ deadlineSeconds: 1, pollInitialMs: 200 });
    const stubs = new StubActivities({ checkProvider: running });

    const started = Date.now();
    await withWorker(stubs, async (taskQueue) => {
      const handle = await start(taskQueue, input);
      expect(await handle.result()).toEqual({
        status: 'failed',
        error: { code: 'provider_timeout', message: 'the provider did not finish within 1 s' },
        assetIds: [],
      });
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);

    const names = stubs.names();
    const polls = names.filter((n) => n === 'checkProvider').length;
    // The workflow asks for 200, 300, 450 ms waits, but the server fires timers at about one-second
    // granularity: typically the first wait already passes the deadline, after two polls.
    expect(polls).toBeGreaterThanOrEqual(2);
    expect(names).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      ...Array<ActivityName>(polls).fill('checkProvider'),
      'cancelAtProvider',
      'releaseCapacity',
      'failGeneration',
      'createWebhookEvent',
    ]);
    expect(stubs.argsOf('failGeneration')[0]?.[0]).toMatchObject({
      status: 'failed',
      error: { code: 'provider_timeout' },
    });
  });

  /** A generation that is cancelled once its first provider poll has returned. */
  async function cancelWhileWaiting() {
    const input = generationInput({ pollInitialMs: 60_000 });
    const polled = deferred();
    const stubs = new StubActivities({
      checkProvider: async () => {
        polled.resolve();
        return { state: 'running', logs: [] };
      },
      // Slow enough that a refund cut short by the cancellation would show.
      failGeneration: () => sleep(300),
    });
    return { input, polled, stubs };
  }

  it('refunds a generation cancelled while waiting at the provider, in a scope the cancellation cannot cut', async () => {
    const { input, polled, stubs } = await cancelWhileWaiting();

    await withWorker(stubs, async (taskQueue) => {
      const { handle } = await submit(taskQueue, input);
      await polled.promise;
      await handle.cancel();
      // Wait for the close however the workflow ends; the next test checks how it ends.
      await handle.result().catch(() => undefined);
      expect(await statusAttribute(handle)).toBe('canceled');
    });

    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      'checkProvider',
      'cancelAtProvider',
      'releaseCapacity',
      'failGeneration',
      'createWebhookEvent',
    ]);
    // The refund finished, then the generation's end was recorded for its webhooks.
    expect(stubs.finished.slice(-2)).toEqual(['failGeneration', 'createWebhookEvent']);
    expect(stubs.argsOf('cancelAtProvider')).toEqual([
      [{ ...input, requestId: `request-${input.generationId}` }],
    ]);
    expect(stubs.argsOf('failGeneration')).toEqual([
      [
        {
          userId: input.userId,
          generationId: input.generationId,
          status: 'canceled',
          error: { code: 'canceled', message: 'The generation was canceled.' },
        },
      ],
    ]);
  });

  it('returns {status: canceled} normally once a cancelled generation is refunded', async () => {
    const { input, polled, stubs } = await cancelWhileWaiting();

    await withWorker(stubs, async (taskQueue) => {
      const { handle } = await submit(taskQueue, input);
      await polled.promise;
      await handle.cancel();
      // Fails while the workflow's final `condition(allHandlersFinished)` runs in the cancelled
      // root scope: it throws CancelledFailure and the execution closes as CANCELLED instead.
      expect(await handle.result()).toEqual({
        status: 'canceled',
        error: { code: 'canceled', message: 'The generation was canceled.' },
        assetIds: [],
      });
      expect((await handle.describe()).status.name).toBe('COMPLETED');
    });
  });

  it('polls again at once when the provider webhook signal arrives', async () => {
    const input = generationInput({ pollInitialMs: 60_000 });
    const polled = deferred();
    const stubs = new StubActivities({
      checkProvider: sequence<[unknown], ProviderStatus>(
        async () => {
          polled.resolve();
          return { state: 'running', logs: [] };
        },
        async () => ({ state: 'succeeded', logs: [] }),
      ),
    });

    let signalledAt = 0;
    await withWorker(stubs, async (taskQueue) => {
      const handle = await start(taskQueue, input);
      await polled.promise;
      await sleep(300); // let the workflow settle into its 60 s wait
      signalledAt = Date.now();
      await handle.signal(providerEventSignal, { requestId: `request-${input.generationId}` });
      expect(await handle.result()).toMatchObject({ status: 'succeeded' });
    });

    const polls = stubs.calls.filter((c) => c.name === 'checkProvider');
    expect(polls).toHaveLength(2);
    expect(polls[1]!.at - signalledAt).toBeLessThan(2000);
    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      'checkProvider',
      'checkProvider',
      'releaseCapacity',
      'storeOutputs',
      'completeGeneration',
      'createWebhookEvent',
    ]);
  });

  it('answers a repeated Update-with-Start from the running workflow, admitting only once', async () => {
    const input = generationInput();
    const stubs: StubActivities = new StubActivities({
      checkProvider: async () => {
        await hold.promise;
        return { state: 'succeeded', logs: [] };
      },
    });
    const hold = stubs.gate();

    await withWorker(stubs, async (taskQueue) => {
      const first = await submit(taskQueue, input);
      const second = await submit(taskQueue, input);
      expect(first.admission).toEqual({ admitted: true, reservationId: `reserve-${input.generationId}` });
      expect(second.admission).toEqual(first.admission);
      expect(second.handle.workflowId).toBe(first.handle.workflowId);
      expect((await second.handle.describe()).runId).toBe((await first.handle.describe()).runId);
      hold.resolve();
      expect(await first.handle.result()).toMatchObject({ status: 'succeeded' });
    });

    expect(stubs.names().filter((n) => n === 'admitGeneration')).toHaveLength(1);
    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      'checkProvider',
      'releaseCapacity',
      'storeOutputs',
      'completeGeneration',
      'createWebhookEvent',
    ]);
  });
});

/** The cancel update's refusal, as the API sees it: an ApplicationFailure of type not_cancelable. */
async function cancelRefusal(handle: WorkflowHandle): Promise<{ type?: string | null; message: string }> {
  const err = await handle.executeUpdate(cancelUpdate).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  const cause = (err as WorkflowUpdateFailedError).cause as ApplicationFailure;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return { type: cause.type, message: cause.message };
}

describe('GenerationWorkflow: cancellation at every stage and the point of no return', () => {
  const canceledRefund = (input: GenerationInput) => [
    {
      userId: input.userId,
      generationId: input.generationId,
      status: 'canceled',
      error: { code: 'canceled', message: 'The generation was canceled.' },
    },
  ];

  it('a cancel that arrives during admission is taken as soon as admission ends, and refunds', async () => {
    const input = generationInput();
    const admitting = deferred();
    const stubs: StubActivities = new StubActivities({
      admitGeneration: async (i) => {
        admitting.resolve();
        await admit.promise;
        return { reservationId: `reserve-${i.generationId}`, pollInitialMs: 50 };
      },
    });
    const admit = stubs.gate();

    await withWorker(stubs, async (taskQueue) => {
      const handle = await start(taskQueue, input);
      await admitting.promise;
      // Admission is a local activity inside a workflow task: the update is taken after it.
      const cancel = handle.executeUpdate(cancelUpdate);
      await sleep(200);
      admit.resolve();
      await cancel;
      expect(await handle.result()).toMatchObject({ status: 'canceled', assetIds: [] });
    });

    const names = stubs.names();
    expect(names.filter((n) => n === 'admitGeneration')).toHaveLength(1);
    expect(names).not.toContain('storeOutputs');
    // Whatever reached the provider was cancelled there.
    expect(names.includes('submitToProvider')).toBe(names.includes('cancelAtProvider'));
    expect(names.slice(-2)).toEqual(['failGeneration', 'createWebhookEvent']);
    expect(stubs.argsOf('failGeneration')).toEqual([canceledRefund(input)]);
  });

  it.each(['queued', 'running'] as const)(
    'a cancel while %s at the provider is accepted: cancelled there, refunded, no output stored',
    async (state) => {
      const input = generationInput({ pollInitialMs: 60_000 });
      const polled = deferred();
      const stubs = new StubActivities({
        checkProvider: async () => {
          polled.resolve();
          return state === 'queued' ? { state, queuePosition: 2, logs: [] } : { state, logs: [] };
        },
      });

      await withWorker(stubs, async (taskQueue) => {
        const { handle } = await submit(taskQueue, input);
        await polled.promise;
        await handle.executeUpdate(cancelUpdate);
        expect(await handle.result()).toMatchObject({ status: 'canceled', assetIds: [] });
        expect(await statusAttribute(handle)).toBe('canceled');
      });

      expect(stubs.names()).toEqual([
        'admitGeneration',
        'requestCapacity',
        'submitToProvider',
        'checkProvider',
        'cancelAtProvider',
        'releaseCapacity',
        'failGeneration',
        'createWebhookEvent',
      ]);
      expect(stubs.argsOf('failGeneration')).toEqual([canceledRefund(input)]);
    },
  );

  it('refuses a cancel once the provider has succeeded: storing runs to the end and is charged, even through a workflow cancel', async () => {
    const input = generationInput();
    const storing = deferred();
    const stubs: StubActivities = new StubActivities({
      storeOutputs: async (i) => {
        storing.resolve();
        await slowDownload.promise;
        return [`asset-${i.generationId}-0`];
      },
    });
    const slowDownload = stubs.gate();

    await withWorker(stubs, async (taskQueue) => {
      const { handle } = await submit(taskQueue, input);
      await storing.promise;
      expect(await handle.query(progressQuery)).toMatchObject({
        status: 'running',
        stage: 'storing outputs',
      });
      expect(await cancelRefusal(handle)).toEqual({
        type: 'not_cancelable',
        message: 'The provider has finished this generation: it is being stored and charged.',
      });
      // An operator's cancel of the whole workflow (UI, CLI) does not cut the download either.
      await handle.cancel();
      await sleep(300);
      slowDownload.resolve();
      expect(await handle.result()).toEqual({
        status: 'succeeded',
        assetIds: [`asset-${input.generationId}-0`],
      });
    });

    expect(stubs.names()).toEqual([
      'admitGeneration',
      'requestCapacity',
      'submitToProvider',
      'checkProvider',
      'releaseCapacity',
      'storeOutputs',
      'completeGeneration',
      'createWebhookEvent',
    ]);
    expect(stubs.argsOf('failGeneration')).toEqual([]);
  });

  it('refuses a cancel of a generation that has already ended', async () => {
    const input = generationInput();
    const stubs: StubActivities = new StubActivities({
      // Hold the workflow open after settlement, so the update reaches a running workflow.
      createWebhookEvent: async () => {
        await hold.promise;
        return {
          deliveries: [],
          eventId: null,
          retry: { initialMs: 100, maxIntervalMs: 100, maxAttempts: 1 },
        };
      },
    });
    const hold = stubs.gate();

    await withWorker(stubs, async (taskQueue) => {
      const { handle } = await submit(taskQueue, input);
      await waitUntil(() => stubs.names().includes('createWebhookEvent'));
      expect(await cancelRefusal(handle)).toEqual({
        type: 'not_cancelable',
        message: 'This generation has already succeeded and was charged.',
      });
      hold.resolve();
      expect(await handle.result()).toMatchObject({ status: 'succeeded' });
    });
    expect(stubs.argsOf('failGeneration')).toEqual([]);
  });

  it('gives clients a generic internal_error for an unexpected failure, never its raw message', async () => {
    const input = generationInput();
    const stubs = new StubActivities({
      storeOutputs: async () => {
        throw ApplicationFailure.nonRetryable(
          'relation "assets" does not exist at /srv/velro/activities/outputs.ts:12',
          'DatabaseError',
        );
      },
    });

    await withWorker(stubs, async (taskQueue) => {
      const handle = await start(taskQueue, input);
      const outcome = await handle.result();
      expect(outcome).toMatchObject({ status: 'failed', error: { code: 'internal_error' } });
      expect(outcome.error!.message).toBe(
        `Something went wrong on our side with generation ${input.generationId}; its credits were refunded.`,
      );
    });
    expect(JSON.stringify(stubs.argsOf('failGeneration'))).not.toMatch(/assets|srv|outputs\.ts/);
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(50);
  }
}
