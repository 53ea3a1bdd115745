// How the generation workflow hands its end to webhook delivery workflows, and how those retry, on
// the real Temporal dev server with stub activities (no Postgres, no HTTP).
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationInput, WebhookDeliveryInput, WebhookNotice } from '../../workflows/definitions';
import type { WebhookDeliveryWorkflow } from '../../workflows/webhook-delivery';
import { testStack } from '../support/context';
import {
  FIXED_IDS,
  generationInput as baseInput,
  StubActivities,
  StubWorkflows,
  type Activities,
} from '../support/generation-stubs';

const retry = { initialMs: 100, maxIntervalMs: 200, maxAttempts: 3 };

let temporal: StubWorkflows;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  temporal = await StubWorkflows.connect(testStack().temporalAddress, {
    workflowBundle: { codePath: testStack().workflowBundlePath },
    taskQueuePrefix: 'webhook-test',
  });
});

afterAll(async () => {
  await temporal?.close();
});

/** Stub activities that log their calls (one request, one asset, this file's retry); a test overrides what it needs. */
const stubs = (overrides: Partial<Activities> = {}) =>
  new StubActivities({
    ...FIXED_IDS,
    createWebhookEvent: async () => ({ deliveries: [], eventId: null, retry }),
    ...overrides,
  });

const withWorker = <T>(s: StubActivities, fn: (taskQueue: string) => Promise<T>) =>
  temporal.withWorker(s, fn);

const generationInput = (overrides: Partial<GenerationInput> = {}) =>
  baseInput({
    input: { prompt: 'a lighthouse at dusk' },
    webhookUrl: 'https://hooks.example.com/velro',
    ...overrides,
  });

const startGeneration = (taskQueue: string, input: GenerationInput) => temporal.start(taskQueue, input);

function notice(eventId: string, targets: string[]): WebhookNotice {
  return {
    eventId,
    deliveries: targets.map((t) => ({ deliveryId: `delivery-${t}`, workflowId: `webhook-${eventId}-${t}` })),
    retry,
  };
}

describe('the end of a generation, handed to webhook deliveries', () => {
  it('records the event after settlement, then starts one delivery per target that outlives the generation', async () => {
    const input = generationInput();
    const eventId = randomUUID();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const s = stubs({
      createWebhookEvent: async () => notice(eventId, ['url', 'endpoint-a']),
      deliverWebhook: async () => {
        await held;
        return 'delivered';
      },
    });

    await withWorker(s, async (taskQueue) => {
      const generation = await startGeneration(taskQueue, input);
      expect(await generation.result()).toEqual({ status: 'succeeded', assetIds: ['asset-1'] });

      // The generation is closed, its deliveries still run: ParentClosePolicy ABANDON.
      const children = ['url', 'endpoint-a'].map((t) =>
        temporal.client.workflow.getHandle<typeof WebhookDeliveryWorkflow>(`webhook-${eventId}-${t}`),
      );
      for (const child of children) {
        const described = await child.describe();
        expect(described.status.name).toBe('RUNNING');
        expect(described.parentExecution?.workflowId).toBe(generation.workflowId);
      }
      release();
      expect(await Promise.all(children.map((c) => c.result()))).toEqual(['delivered', 'delivered']);
    });

    const names = s.names();
    expect(names.indexOf('completeGeneration')).toBeLessThan(names.indexOf('createWebhookEvent'));
    expect(s.calls.find((c) => c.name === 'createWebhookEvent')!.args).toEqual([
      { userId: input.userId, generationId: input.generationId, webhookUrl: input.webhookUrl },
    ]);
    const delivered = s.calls.filter((c) => c.name === 'deliverWebhook').map((c) => c.args[0]);
    expect(delivered).toHaveLength(2);
    expect(delivered).toContainEqual({ userId: input.userId, deliveryId: 'delivery-url', retry });
  });

  it('never lets a failed notify change how the generation ended', async () => {
    const input = generationInput();
    const s = stubs({
      createWebhookEvent: async () => {
        throw ApplicationFailure.nonRetryable('database on fire', 'Boom');
      },
    });
    await withWorker(s, async (taskQueue) => {
      const generation = await startGeneration(taskQueue, input);
      expect(await generation.result()).toEqual({ status: 'succeeded', assetIds: ['asset-1'] });
    });
    expect(s.names()).not.toContain('deliverWebhook');
  });

  it('does not send twice when a delivery with that id already ran (a reset or repeated notify)', async () => {
    const input = generationInput();
    const eventId = randomUUID();
    const s = stubs({ createWebhookEvent: async () => notice(eventId, ['url']) });
    await withWorker(s, async (taskQueue) => {
      const earlier = await temporal.client.workflow.start<typeof WebhookDeliveryWorkflow>(
        'WebhookDeliveryWorkflow',
        {
          workflowId: `webhook-${eventId}-url`,
          taskQueue,
          args: [{ userId: input.userId, deliveryId: 'delivery-url', eventId, retry }],
        },
      );
      expect(await earlier.result()).toBe('delivered');
      const generation = await startGeneration(taskQueue, input);
      expect(await generation.result()).toEqual({ status: 'succeeded', assetIds: ['asset-1'] });
    });
    expect(s.names().filter((n) => n === 'deliverWebhook')).toHaveLength(1);
  });
});

describe('WebhookDeliveryWorkflow', () => {
  const start = (taskQueue: string, input: Partial<WebhookDeliveryInput> = {}) =>
    temporal.client.workflow.start<typeof WebhookDeliveryWorkflow>('WebhookDeliveryWorkflow', {
      workflowId: `webhook-test-${randomUUID()}`,
      taskQueue,
      args: [{ userId: randomUUID(), deliveryId: randomUUID(), eventId: randomUUID(), retry, ...input }],
    });

  it('retries a failed attempt with backoff until one succeeds', async () => {
    let attempts = 0;
    const s = stubs({
      deliverWebhook: async () => {
        if (++attempts < 3)
          throw ApplicationFailure.retryable(`HTTP 500 (attempt ${attempts})`, 'WebhookDeliveryFailed');
        return 'delivered';
      },
    });
    await withWorker(s, async (taskQueue) => {
      expect(await (await start(taskQueue)).result()).toBe('delivered');
    });
    expect(s.names()).toEqual(['deliverWebhook', 'deliverWebhook', 'deliverWebhook']);
  });

  it('gives up after the bounded attempts, recording why; the history stays short', async () => {
    const s = stubs({
      deliverWebhook: async () => {
        throw ApplicationFailure.retryable('HTTP 503: nope', 'WebhookDeliveryFailed');
      },
    });
    const deliveryId = randomUUID();
    await withWorker(s, async (taskQueue) => {
      const handle = await start(taskQueue, { deliveryId });
      expect(await handle.result()).toBe('failed');
      // Retries live in the activity's retry policy, not in the history.
      expect((await handle.fetchHistory()).events!.length).toBeLessThan(20);
    });
    expect(s.names()).toEqual([
      'deliverWebhook',
      'deliverWebhook',
      'deliverWebhook',
      'finishWebhookDelivery',
    ]);
    expect(s.calls.at(-1)!.args[0]).toMatchObject({ deliveryId, reason: 'HTTP 503: nope' });
  });

  it('stops at once on an outcome the activity reports (410 Gone)', async () => {
    const s = stubs({ deliverWebhook: async () => 'gone' });
    await withWorker(s, async (taskQueue) => {
      expect(await (await start(taskQueue)).result()).toBe('gone');
    });
    expect(s.names()).toEqual(['deliverWebhook']);
  });
});
