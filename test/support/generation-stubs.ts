/**
 * Stub activities for GenerationWorkflow and WebhookDeliveryWorkflow, and a worker that runs the
 * real workflow code with them: the one builder behind test/workflows/generation-workflow.test.ts,
 * test/workflows/webhooks.test.ts and test/support/record-histories.ts. No Postgres, no provider,
 * no HTTP: every call is recorded, so a test asserts the order of side effects the workflow asks for.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection, WithStartWorkflowOperation, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { createActivities } from '../../activities';
import {
  admissionUpdate,
  generationWorkflowId,
  ModelKey,
  StatusKey,
  UserIdKey,
  type GenerationInput,
} from '../../workflows/definitions';
import type { GenerationWorkflow } from '../../workflows/generation';

/** The activities the two workflows call (the worker's factory may hold others, e.g. for the reconciler). */
export type Activities = Pick<
  ReturnType<typeof createActivities>,
  | 'admitGeneration'
  | 'requestCapacity'
  | 'checkCapacity'
  | 'releaseCapacity'
  | 'resolveInputImages'
  | 'submitToProvider'
  | 'checkProvider'
  | 'storeOutputs'
  | 'completeGeneration'
  | 'failGeneration'
  | 'cancelAtProvider'
  | 'createWebhookEvent'
  | 'deliverWebhook'
  | 'finishWebhookDelivery'
>;
export type ActivityName = keyof Activities;

export interface Call {
  name: ActivityName;
  args: unknown[];
  at: number;
}

export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The i-th call runs the i-th function; calls past the end repeat the last one. */
export function sequence<A extends unknown[], R>(
  ...fns: ((...args: A) => Promise<R>)[]
): (...args: A) => Promise<R> {
  let i = 0;
  return (...args: A) => fns[Math.min(i++, fns.length - 1)]!(...args);
}

/**
 * One provider request and one asset whatever the generation (`request-1`, `asset-1`): the values
 * test/fixtures/histories were recorded with, and what test/workflows/webhooks.test.ts expects.
 */
export const FIXED_IDS: Partial<Activities> = {
  submitToProvider: async () => ({ requestId: 'request-1' }),
  storeOutputs: async () => ['asset-1'],
};

/**
 * Activities with the names and signatures of `createActivities`' members that record each call,
 * succeeding by default (ids derived from the generation's); a test overrides the ones it needs.
 */
export class StubActivities {
  readonly calls: Call[] = [];
  /** Calls that returned or threw, in the order they finished. */
  readonly finished: ActivityName[] = [];
  readonly activities: Activities;
  private readonly gates: Deferred[] = [];
  private readonly waiting: { name: ActivityName; resolve(): void }[] = [];

  constructor(overrides: Partial<Activities> = {}) {
    const impl: Activities = {
      // The poll interval is the input's where it has one, as every input here does.
      admitGeneration: async (input) => ({
        reservationId: `reserve-${input.generationId}`,
        pollInitialMs: 50,
      }),
      // A slot at once, unless a test makes it wait.
      requestCapacity: async () => ({
        granted: true,
        position: null,
        recheckMs: 60_000,
        maxWaitMs: 3_600_000,
      }),
      checkCapacity: async () => ({ granted: true, position: null, recheckMs: 60_000, maxWaitMs: 3_600_000 }),
      releaseCapacity: async () => undefined,
      // Each image field handed over as a provider URL of its own.
      resolveInputImages: async (input) =>
        Object.fromEntries(
          ['image_url', 'end_image_url']
            .filter((f) => input.input[f] !== undefined)
            .map((f) => [f, `https://files.example.com/${input.generationId}/${f}.png`]),
        ),
      submitToProvider: async (input) => ({ requestId: `request-${input.generationId}` }),
      checkProvider: async () => ({ state: 'succeeded', logs: [] }),
      storeOutputs: async (input) => [`asset-${input.generationId}-0`, `asset-${input.generationId}-1`],
      completeGeneration: async () => undefined,
      failGeneration: async () => undefined,
      cancelAtProvider: async () => undefined,
      // No webhook targets: test/workflows/webhooks.test.ts covers the deliveries.
      createWebhookEvent: async () => ({
        deliveries: [],
        eventId: null,
        retry: { initialMs: 100, maxIntervalMs: 100, maxAttempts: 1 },
      }),
      deliverWebhook: async () => 'delivered',
      finishWebhookDelivery: async () => undefined,
      ...overrides,
    };
    this.activities = {
      admitGeneration: this.record('admitGeneration', impl.admitGeneration),
      requestCapacity: this.record('requestCapacity', impl.requestCapacity),
      checkCapacity: this.record('checkCapacity', impl.checkCapacity),
      releaseCapacity: this.record('releaseCapacity', impl.releaseCapacity),
      resolveInputImages: this.record('resolveInputImages', impl.resolveInputImages),
      submitToProvider: this.record('submitToProvider', impl.submitToProvider),
      checkProvider: this.record('checkProvider', impl.checkProvider),
      storeOutputs: this.record('storeOutputs', impl.storeOutputs),
      completeGeneration: this.record('completeGeneration', impl.completeGeneration),
      failGeneration: this.record('failGeneration', impl.failGeneration),
      cancelAtProvider: this.record('cancelAtProvider', impl.cancelAtProvider),
      createWebhookEvent: this.record('createWebhookEvent', impl.createWebhookEvent),
      deliverWebhook: this.record('deliverWebhook', impl.deliverWebhook),
      finishWebhookDelivery: this.record('finishWebhookDelivery', impl.finishWebhookDelivery),
    };
  }

  private record<A extends unknown[], R>(name: ActivityName, fn: (...args: A) => Promise<R>) {
    return async (...args: A): Promise<R> => {
      this.calls.push({ name, args, at: Date.now() });
      try {
        return await fn(...args);
      } finally {
        this.finished.push(name);
        for (const w of this.waiting.filter((x) => x.name === name)) w.resolve();
      }
    };
  }

  names(): ActivityName[] {
    return this.calls.map((c) => c.name);
  }

  argsOf(name: ActivityName): unknown[][] {
    return this.calls.filter((c) => c.name === name).map((c) => c.args);
  }

  /** Resolves once a call of `name` has returned or thrown (at once if one already has). */
  finishedOnce(name: ActivityName): Promise<void> {
    if (this.finished.includes(name)) return Promise.resolve();
    const d = deferred();
    this.waiting.push({ name, resolve: d.resolve });
    return d.promise;
  }

  /** A promise an activity can wait on; every gate opens when the test ends, so no worker hangs. */
  gate(): Deferred {
    const d = deferred();
    this.gates.push(d);
    return d;
  }

  releaseAll(): void {
    for (const g of this.gates) g.resolve();
  }
}

/** A generation as the API would start it, on the local provider; `overrides` change what a test needs. */
export function generationInput(overrides: Partial<GenerationInput> = {}): GenerationInput {
  return {
    generationId: randomUUID(),
    userId: randomUUID(),
    projectId: null,
    model: 'flux-pro-v1.1-ultra',
    input: { prompt: 'a lighthouse at dusk', seed: 7 },
    credits: 50,
    provider: 'local',
    deadlineSeconds: 60,
    pollInitialMs: 50,
    webhookUrl: null,
    ...overrides,
  };
}

export interface StubWorkflowsOptions {
  /** The workflow code the workers run: the test stack's bundle, or one just built. */
  workflowBundle: NonNullable<WorkerOptions['workflowBundle']>;
  /** Each worker gets a task queue of its own, `<prefix>-<uuid>`. */
  taskQueuePrefix: string;
}

/**
 * A client and a worker connection to one Temporal server, to run the workflows on stub activities
 * and start them as the API does.
 */
export class StubWorkflows {
  private constructor(
    readonly client: Client,
    private readonly connection: Connection,
    private readonly nativeConnection: NativeConnection,
    private readonly options: StubWorkflowsOptions,
  ) {}

  static async connect(address: string, options: StubWorkflowsOptions): Promise<StubWorkflows> {
    const connection = await Connection.connect({ address });
    const nativeConnection = await NativeConnection.connect({ address });
    return new StubWorkflows(new Client({ connection }), connection, nativeConnection, options);
  }

  /** Runs `fn` with a new worker of the stub activities on a task queue of its own. */
  async withWorker<T>(stubs: StubActivities, fn: (taskQueue: string) => Promise<T>): Promise<T> {
    const taskQueue = `${this.options.taskQueuePrefix}-${randomUUID()}`;
    const worker = await Worker.create({
      connection: this.nativeConnection,
      taskQueue,
      workflowBundle: this.options.workflowBundle,
      activities: stubs.activities,
    });
    return worker.runUntil(async () => {
      try {
        return await fn(taskQueue);
      } finally {
        stubs.releaseAll();
      }
    });
  }

  /** Starts the workflow as the API does: Update-with-Start, answered once admission is decided. */
  async submit(taskQueue: string, input: GenerationInput) {
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof GenerationWorkflow>(
      'GenerationWorkflow',
      {
        workflowId: generationWorkflowId(input.generationId),
        taskQueue,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        typedSearchAttributes: [
          { key: UserIdKey, value: input.userId },
          { key: ModelKey, value: input.model },
          { key: StatusKey, value: 'queued' },
        ],
      },
    );
    const admission = await this.client.workflow.executeUpdateWithStart(admissionUpdate, {
      startWorkflowOperation,
    });
    return { admission, handle: await startWorkflowOperation.workflowHandle() };
  }

  /** Starts the workflow without waiting on admission. */
  start(taskQueue: string, input: GenerationInput): Promise<WorkflowHandle<typeof GenerationWorkflow>> {
    return this.client.workflow.start<typeof GenerationWorkflow>('GenerationWorkflow', {
      workflowId: generationWorkflowId(input.generationId),
      taskQueue,
      args: [input],
      typedSearchAttributes: [{ key: StatusKey, value: 'queued' }],
    });
  }

  async close(): Promise<void> {
    await this.nativeConnection.close();
    await this.connection.close();
  }
}
