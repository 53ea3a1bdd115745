/**
 * Records real histories of GenerationWorkflow, run by the current workflow sources with stub
 * activities, into test/fixtures/histories/<scenario>.json. test/workflows/replay.test.ts replays
 * them to catch changes that would break workflows already running in production.
 *
 * Re-record only after an intentional, compatible-by-design change (or when the old histories may
 * safely stop replaying, e.g. no such workflows are open any more):
 *
 *   npx tsx test/support/record-histories.ts              # every scenario
 *   npx tsx test/support/record-histories.ts happy-path   # some of them
 *
 * Uses the Temporal server at TEMPORAL_ADDRESS when set (it must have the Velro search attributes),
 * otherwise starts an in-memory dev server of its own.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, WithStartWorkflowOperation, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import * as prettier from 'prettier';
import type { createActivities } from '../../activities';
import type { ProviderStatus } from '../../lib/providers/provider';
import { startTemporalDevServer, VELRO_SEARCH_ATTRIBUTES } from '../../lib/temporal/dev-server';
import { ensureTemporalCli } from '../../scripts/temporal-cli';
import {
  admissionUpdate,
  cancelUpdate,
  generationWorkflowId,
  ModelKey,
  progressQuery,
  providerEventSignal,
  StatusKey,
  UserIdKey,
  type GenerationInput,
} from '../../workflows/definitions';
import type { GenerationWorkflow } from '../../workflows/generation';

/*
 * Fixture format: the protobufjs object form of temporal.api.history.v1.History (64-bit numbers,
 * enums and bytes as strings), written and read with the generated History class.
 *
 * Not `historyToJSON`/`historyFromJSON` from @temporalio/common/lib/proto-utils, nor raw JSON passed
 * to `Worker.runReplayHistory` (which calls historyFromJSON): with this lockfile npm installs two
 * copies of protobufjs 8 (under @temporalio/common and under @temporalio/proto, the top level
 * holding protobufjs 7 for @grpc/proto-loader), so protojson's `type instanceof Type` check fails
 * and both throw "TypeError: type must be a Type".
 */
const HistoryMessage = temporal.api.history.v1.History;

/** A fetched history as fixture text. */
export function historyToFixture(history: History): string {
  const message = HistoryMessage.fromObject(history);
  return JSON.stringify(HistoryMessage.toObject(message, { longs: String, enums: String, bytes: String }));
}

/** A fixture's parsed JSON as a History that `Worker.runReplayHistory` takes as is. */
export function historyFromFixture(json: unknown): History {
  return HistoryMessage.fromObject(json as Record<string, unknown>);
}

export const HISTORIES_DIR = path.resolve(__dirname, '../fixtures/histories');
const WORKFLOWS_DIR = path.resolve(__dirname, '../../workflows');

type Activities = Pick<
  ReturnType<typeof createActivities>,
  | 'admitGeneration'
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

interface Scenario {
  input: Partial<GenerationInput>;
  activities: Partial<Activities>;
  /** Drives the started workflow (signals, cancellation) until its history is complete. */
  drive(handle: WorkflowHandle<typeof GenerationWorkflow>, s: ScenarioState): Promise<void>;
}

interface ScenarioState {
  /** Resolves after the first provider poll has returned. */
  firstPoll: Promise<void>;
}

/** The i-th poll answers the i-th status; later polls repeat the last. */
function polls(...statuses: ProviderStatus[]): Activities['checkProvider'] {
  let i = 0;
  return async () => statuses[Math.min(i++, statuses.length - 1)]!;
}

const running: ProviderStatus = { state: 'running', logs: ['rendering'] };

/** The scenarios the replay test expects, by fixture name. */
export const SCENARIOS = {
  // Admitted, queued then running, a provider webhook, then success: outputs stored, credits committed.
  'happy-path': {
    input: { pollInitialMs: 100 },
    activities: {
      checkProvider: polls({ state: 'queued', queuePosition: 2, logs: ['queued'] }, running, {
        state: 'succeeded',
        logs: ['done'],
      }),
    },
    async drive(handle, s) {
      await s.firstPoll;
      await handle.signal(providerEventSignal, { requestId: 'request-1' });
      await handle.result();
    },
  },
  // The provider refuses the job: cancelled there, credits refunded.
  'provider-failure': {
    input: { pollInitialMs: 100 },
    activities: {
      checkProvider: polls(running, {
        state: 'failed',
        logs: ['refused'],
        error: { code: 'content_policy', message: 'The prompt was refused.' },
      }),
    },
    async drive(handle) {
      await handle.result();
    },
  },
  // Cancelled while waiting at the provider: cancelled there, credits refunded.
  cancel: {
    input: { pollInitialMs: 60_000 },
    activities: { checkProvider: polls(running) },
    async drive(handle, s) {
      await s.firstPoll;
      await sleep(200);
      await handle.cancel();
      await handle.result().catch(() => undefined);
    },
  },
  // Since webhooks (the 'outgoing-webhooks' patch): the happy path, then the end recorded as a webhook
  // event with one target, whose delivery workflow starts as an abandoned child. The four fixtures
  // above were recorded before that patch: they prove generations already running keep replaying.
  webhooks: {
    input: { pollInitialMs: 100, webhookUrl: 'https://hooks.example.com/velro' },
    activities: {
      createWebhookEvent: async (p) => ({
        eventId: 'event-1',
        deliveries: [{ deliveryId: 'delivery-1', workflowId: `webhook-event-1-${p.generationId}` }],
        retry: { initialMs: 100, maxIntervalMs: 100, maxAttempts: 1 },
      }),
    },
    async drive(handle) {
      await handle.result();
      // The delivery outlives the generation; let it finish before the worker stops.
      const generationId = handle.workflowId.replace(/^generation-/, '');
      await handle.client.getHandle(`webhook-event-1-${generationId}`).result();
    },
  },
  // Since the 'point-of-no-return' patch: the provider succeeded, then, while the outputs are being
  // stored, the cancel update is refused (a rejected update leaves no event) and an operator cancels
  // the workflow: storing runs to the end, the credits are committed, the workflow completes.
  'point-of-no-return': {
    input: { pollInitialMs: 100 },
    activities: {
      storeOutputs: async () => {
        await sleep(1500);
        return ['asset-1'];
      },
    },
    async drive(handle) {
      while ((await handle.query(progressQuery)).stage !== 'storing outputs') await sleep(50);
      await handle.executeUpdate(cancelUpdate).catch(() => undefined);
      await handle.cancel();
      await handle.result();
    },
  },
  // Since the cancel update: a client's cancel while waiting at the provider, taken by the workflow.
  'cancel-update': {
    input: { pollInitialMs: 60_000 },
    activities: { checkProvider: polls(running) },
    async drive(handle, s) {
      await s.firstPoll;
      await sleep(200);
      await handle.executeUpdate(cancelUpdate);
      await handle.result();
    },
  },
  // Admission refused for want of credits: nothing else runs.
  'insufficient-credits': {
    input: {},
    activities: {
      admitGeneration: async () => {
        throw ApplicationFailure.nonRetryable('available 40 < 50', 'InsufficientCredits');
      },
    },
    async drive(handle) {
      await handle.result();
    },
  },
} satisfies Record<string, Scenario>;

export type ScenarioName = keyof typeof SCENARIOS;

function stubActivities(overrides: Partial<Activities>, onPoll: () => void): Activities {
  const impl: Activities = {
    admitGeneration: async (input) => ({ reservationId: `reserve-${input.generationId}` }),
    submitToProvider: async () => ({ requestId: 'request-1' }),
    checkProvider: async () => ({ state: 'succeeded', logs: [] }),
    storeOutputs: async () => ['asset-1'],
    completeGeneration: async () => undefined,
    failGeneration: async () => undefined,
    cancelAtProvider: async () => undefined,
    createWebhookEvent: async () => ({
      deliveries: [],
      eventId: null,
      retry: { initialMs: 100, maxIntervalMs: 100, maxAttempts: 1 },
    }),
    deliverWebhook: async () => 'delivered',
    finishWebhookDelivery: async () => undefined,
    ...overrides,
  };
  return {
    ...impl,
    checkProvider: async (input) => {
      const status = await impl.checkProvider(input);
      onPoll();
      return status;
    },
  };
}

async function record(
  client: Client,
  nativeConnection: NativeConnection,
  workflowCode: string,
  name: ScenarioName,
): Promise<string> {
  const scenario: Scenario = SCENARIOS[name];
  let polled!: () => void;
  const firstPoll = new Promise<void>((resolve) => (polled = resolve));
  const taskQueue = `record-histories-${randomUUID()}`;
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue,
    workflowBundle: { code: workflowCode },
    activities: stubActivities(scenario.activities, () => polled()),
  });
  const input: GenerationInput = {
    generationId: randomUUID(),
    userId: randomUUID(),
    projectId: null,
    model: 'flux-pro-v1.1-ultra',
    input: { prompt: 'a lighthouse at dusk', seed: 7 },
    credits: 50,
    provider: 'local',
    deadlineSeconds: 60,
    pollInitialMs: 100,
    webhookUrl: null,
    ...scenario.input,
  };
  return worker.runUntil(async () => {
    // Started as the API starts it, so the history holds the admission update too.
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
    await client.workflow.executeUpdateWithStart(admissionUpdate, { startWorkflowOperation });
    const handle = await startWorkflowOperation.workflowHandle();
    await scenario.drive(handle, { firstPoll });
    return historyToFixture(await handle.fetchHistory());
  });
}

export async function recordHistories(names: ScenarioName[], log: (line: string) => void = console.log) {
  // Scenarios fail activities on purpose: only errors are shown.
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_DIR,
    logger: new DefaultLogger('WARN'),
  });
  const server = process.env.TEMPORAL_ADDRESS
    ? undefined
    : await startTemporalDevServer({
        cliPath: await ensureTemporalCli(log),
        uiPort: false,
        searchAttributes: VELRO_SEARCH_ATTRIBUTES,
      });
  const address = process.env.TEMPORAL_ADDRESS || server!.address;
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  try {
    const client = new Client({ connection });
    await fs.mkdir(HISTORIES_DIR, { recursive: true });
    for (const name of names) {
      const file = path.join(HISTORIES_DIR, `${name}.json`);
      const json = await record(client, nativeConnection, code, name);
      // Formatted as `prettier --check` expects, so the fixtures pass the lint step.
      const options = (await prettier.resolveConfig(file)) ?? {};
      await fs.writeFile(file, await prettier.format(json, { ...options, filepath: file }));
      log(`recorded ${path.relative(process.cwd(), file)} (${JSON.parse(json).events.length} events)`);
    }
  } finally {
    await nativeConnection.close();
    await connection.close();
    await server?.stop();
  }
}

if (require.main === module) {
  const all = Object.keys(SCENARIOS) as ScenarioName[];
  const asked = process.argv.slice(2);
  const unknown = asked.filter((n) => !all.includes(n as ScenarioName));
  if (unknown.length) {
    console.error(`unknown scenario(s) ${unknown.join(', ')}; known: ${all.join(', ')}`);
    process.exit(2);
  }
  recordHistories(asked.length ? (asked as ScenarioName[]) : all).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
