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
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';
import * as prettier from 'prettier';
import type { ProviderStatus } from '../../lib/providers/provider';
import { startTemporalDevServer, VELRO_SEARCH_ATTRIBUTES } from '../../lib/temporal/dev-server';
import { ensureTemporalCli } from '../../lib/temporal/cli';
import {
  cancelUpdate,
  capacityGrantedSignal,
  progressQuery,
  providerEventSignal,
  type GenerationInput,
} from '../../workflows/definitions';
import type { GenerationWorkflow } from '../../workflows/generation';
import {
  FIXED_IDS,
  generationInput,
  StubActivities,
  StubWorkflows,
  type Activities,
} from './generation-stubs';

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
  // Since the 'input-images' patch: image-to-video, its image resolved into a URL the provider can
  // fetch before submit, then the happy path.
  'input-images': {
    input: {
      pollInitialMs: 100,
      model: 'kling-v2.1-master',
      credits: 350,
      input: { prompt: 'the cat walks away', image_url: 'upload:0b8a2c7e-0000-4000-8000-000000000001' },
    },
    activities: {},
    async drive(handle) {
      await handle.result();
    },
  },
  // Since the 'capacity' patch: no provider slot free at first, so the generation waits (queued,
  // stage 'waiting for capacity'), checks once on its own, then is told of its grant; the slot is
  // given back when the provider has finished, before the outputs are stored.
  'capacity-wait': {
    input: { pollInitialMs: 100 },
    activities: {
      requestCapacity: async () => ({ granted: false, position: 3, recheckMs: 300, maxWaitMs: 3_600_000 }),
      checkCapacity: async () => ({ granted: false, position: 1, recheckMs: 300, maxWaitMs: 3_600_000 }),
    },
    async drive(handle, s) {
      while ((await handle.query(progressQuery)).queuePosition !== 1) await sleep(50);
      await handle.signal(capacityGrantedSignal);
      await s.firstPoll;
      await handle.result();
    },
  },
  // Since the 'capacity' patch: a client's cancel while waiting for a slot: it leaves the queue and
  // is refunded, and the provider never hears of it.
  'capacity-cancel': {
    input: { pollInitialMs: 100 },
    activities: {
      requestCapacity: async () => ({ granted: false, position: 2, recheckMs: 60_000, maxWaitMs: 3_600_000 }),
    },
    async drive(handle) {
      while ((await handle.query(progressQuery)).stage !== 'waiting for capacity') await sleep(50);
      await handle.executeUpdate(cancelUpdate);
      await handle.result();
    },
  },
  // Since the 'fewer-round-trips' patch: the short database steps are local activities (markers in
  // the history) and submit answers the provider's first status: a job done at once is stored and
  // charged without a poll, and a webhook is delivered.
  'local-steps-instant': {
    input: { pollInitialMs: 100 },
    activities: {
      submitToProvider: async () => ({
        requestId: 'request-1',
        status: { state: 'succeeded', logs: ['done'] },
      }),
      createWebhookEvent: async (p) => ({
        eventId: `evt_${p.generationId}`,
        deliveries: [{ deliveryId: 'delivery-1', workflowId: `webhook-event-1-${p.generationId}` }],
        retry: { initialMs: 100, maxIntervalMs: 100, maxAttempts: 1 },
      }),
    },
    async drive(handle) {
      await handle.result();
      const generationId = handle.workflowId.replace(/^generation-/, '');
      await handle.client.getHandle(`webhook-event-1-${generationId}`).result();
    },
  },
  // Since the 'fewer-round-trips' patch: queued at submit, polled after a provider webhook, then the
  // provider fails the job: cancelled there, the slot given back and the credits refunded (local).
  'local-steps-polled-failure': {
    input: { pollInitialMs: 100 },
    activities: {
      submitToProvider: async () => ({
        requestId: 'request-1',
        status: { state: 'queued', queuePosition: 2, logs: ['queued'] },
      }),
      checkProvider: polls(running, {
        state: 'failed',
        logs: [],
        error: { code: 'provider_error', message: 'the model failed' },
      }),
    },
    async drive(handle, s) {
      await s.firstPoll;
      await handle.signal(providerEventSignal, { requestId: 'request-1' });
      await handle.result();
    },
  },
  // Since the 'fewer-round-trips' patch: waiting for a slot (checked by a local activity), then a
  // client's cancel: it leaves the queue and is refunded, all by local activities.
  'local-steps-capacity-cancel': {
    input: { pollInitialMs: 100 },
    activities: {
      requestCapacity: async () => ({ granted: false, position: 2, recheckMs: 300, maxWaitMs: 3_600_000 }),
      checkCapacity: async () => ({ granted: false, position: 1, recheckMs: 60_000, maxWaitMs: 3_600_000 }),
    },
    async drive(handle) {
      while ((await handle.query(progressQuery)).queuePosition !== 1) await sleep(50);
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

/** Runs one scenario on a worker of `workflows` and returns its history as fixture text. */
async function record(workflows: StubWorkflows, name: ScenarioName): Promise<string> {
  const scenario: Scenario = SCENARIOS[name];
  const stubs = new StubActivities({ ...FIXED_IDS, ...scenario.activities });
  const input = generationInput({ pollInitialMs: 100, ...scenario.input });
  return workflows.withWorker(stubs, async (taskQueue) => {
    // Started as the API starts it, so the history holds the admission update too.
    const { handle } = await workflows.submit(taskQueue, input);
    await scenario.drive(handle, { firstPoll: stubs.finishedOnce('checkProvider') });
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
  const workflows = await StubWorkflows.connect(address, {
    workflowBundle: { code },
    taskQueuePrefix: 'record-histories',
  });
  try {
    await fs.mkdir(HISTORIES_DIR, { recursive: true });
    for (const name of names) {
      const file = path.join(HISTORIES_DIR, `${name}.json`);
      const json = await record(workflows, name);
      // Formatted as `prettier --check` expects, so the fixtures pass the lint step.
      const options = (await prettier.resolveConfig(file)) ?? {};
      await fs.writeFile(file, await prettier.format(json, { ...options, filepath: file }));
      log(`recorded ${path.relative(process.cwd(), file)} (${JSON.parse(json).events.length} events)`);
    }
  } finally {
    await workflows.close();
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
