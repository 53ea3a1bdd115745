import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  isCancellation,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  setWorkflowOptions,
  startChild,
  upsertSearchAttributes,
  allHandlersFinished,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  admissionUpdate,
  cancelUpdate,
  capacityGrantedSignal,
  isTerminal,
  progressQuery,
  providerEventSignal,
  StatusKey,
  UserIdKey,
  type Admission,
  type AdmissionRefusal,
  type GenerationError,
  type GenerationInput,
  type GenerationOutcome,
  type GenerationStatus,
  type Progress,
} from './definitions';
import type { WebhookDeliveryWorkflow } from './webhook-delivery';

type Activities = ReturnType<typeof createActivities>;

// Admission runs as a local activity: the API's Update-with-Start waits on it (p50 55 ms measured
// here vs 101 ms as a normal activity). A few quick tries, then the API answers 503.
const { admitGeneration } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, initialInterval: '200 ms', nonRetryableErrorTypes: ['InsufficientCredits'] },
});

// Timeouts are short on purpose: a worker that dies mid-activity is only noticed when they expire.
const providerRetry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
  maximumAttempts: 10,
};
const { submitToProvider, checkProvider } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: providerRetry,
});
// Downloads can be long (video); the heartbeat tells a stuck or dead worker from a slow download.
const { storeOutputs } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '30 seconds',
  retry: providerRetry,
});

// Copying a client's image URL and uploading to the provider are each bounded by their own timeouts
// (30 s fetch, PROVIDER_HTTP_TIMEOUT_MS per provider call); a few tries, then the generation fails
// and is refunded. Bad input (a dead URL, an upload that is gone) is not retried.
const { resolveInputImages } = proxyActivities<Activities>({
  startToCloseTimeout: '3 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: ['invalid_input', 'configuration_error', 'provider_unauthorized'],
  },
});

// Settling the ledger must outlast any outage we can reasonably expect: ~2 days of retries, after
// which the reconciler still releases a reservation whose workflow is closed. `failGeneration` (its
// registered name, recorded in histories) refunds the credits and ends the generation as failed
// or canceled: every end that is not charged.
const settleOptions = {
  startToCloseTimeout: '15 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '5 minutes',
    maximumAttempts: 600,
  },
};
const {
  completeGeneration,
  failGeneration: refundAndEnd,
  cancelAtProvider,
} = proxyActivities<Activities>(settleOptions);

// Recording the webhook event is one short transaction; a few minutes of retries, then it is given up
// (logged): the generation itself is settled by then and must not wait on its webhooks any longer.
const webhookEventOptions = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 12,
  },
};
const { createWebhookEvent } = proxyActivities<Activities>(webhookEventOptions);

// Asking for a slot is one short transaction; a few tries, then the generation fails and is refunded.
const capacityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '10 seconds',
    maximumAttempts: 10,
  },
};
const { requestCapacity, checkCapacity } = proxyActivities<Activities>(capacityOptions);
// A slot must come back whatever happens: retried as long as settlement is.
const releaseOptions = { ...settleOptions, startToCloseTimeout: '10 seconds' };
const { releaseCapacity } = proxyActivities<Activities>(releaseOptions);

// Generations started under FEWER_ROUND_TRIPS_PATCH run their short database steps as local
// activities: each is recorded as a marker inside the workflow task that asked for it, instead of a
// task of its own through the server (schedule, poll, start, complete, then a new workflow task).
// The timeouts and retry bounds are the normal activities' above; a retry longer than the SDK's
// local retry threshold (1 min) waits on a durable timer.
const local = {
  settle: proxyLocalActivities<Activities>(settleOptions),
  webhookEvent: proxyLocalActivities<Activities>(webhookEventOptions),
  capacity: proxyLocalActivities<Activities>(capacityOptions),
  release: proxyLocalActivities<Activities>(releaseOptions),
};

const POLL_MAX_INTERVAL_MS = 15_000;
/** Provider log lines kept for the progress query. */
const MAX_PROGRESS_LOGS = 50;

/** Generations started before webhooks existed end without notifying (their histories have no such step). */
export const WEBHOOKS_PATCH = 'outgoing-webhooks';

/**
 * From the provider's success on, a cancel no longer applies: the outputs are stored (retried, never
 * abandoned) and charged. Generations started before this existed stored cancellably, as they did.
 */
export const POINT_OF_NO_RETURN_PATCH = 'point-of-no-return';

/**
 * Generations started before input images were resolved hand their input to the provider as given
 * (only Kontext took an image, as a client's URL).
 */
export const INPUT_IMAGES_PATCH = 'input-images';

/**
 * Generations started before provider capacity existed went to their provider at once (their
 * histories have no slot to ask for or give back).
 */
export const CAPACITY_PATCH = 'capacity';

/**
 * Generations started before this made a normal activity of every step and upserted their status
 * search attribute at every stage. From it on: the short database steps (capacity, settlement, the
 * webhook event) are local activities, submit answers the provider's first status too (no poll
 * when the job is done already), the status attribute is upserted only when it changes, and the
 * older patches are implied. Polls and storing stay normal activities: a local one holds its
 * workflow task open, and progress queries and cancels wait behind it (a cancel while storing must
 * be refused at once).
 */
export const FEWER_ROUND_TRIPS_PATCH = 'fewer-round-trips';

/** The image fields of a model input (IMAGE_FIELDS of lib/catalog/models.ts, not workflow code). */
const IMAGE_FIELDS = ['image_url', 'end_image_url'] as const;

// On a versioned worker a generation finishes on the build that started it (README, Rolling out).
// An unversioned worker (a build id but no deployment name) must declare no behaviour: its task
// completion would be refused.
setWorkflowOptions(
  () => (workflowInfo().currentDeploymentVersion?.deploymentName ? { versioningBehavior: 'PINNED' } : {}),
  GenerationWorkflow,
);

/**
 * One generation: reserve its credits, run it at the provider, keep its outputs, then commit the
 * credits, or refund them on any failure, timeout or cancellation.
 */
export async function GenerationWorkflow(input: GenerationInput): Promise<GenerationOutcome> {
  const fast = patched(FEWER_ROUND_TRIPS_PATCH);
  // The newest patch implies every older one: a generation that has it started after they all
  // existed, so it asks for none of them (each would add a marker and a search attribute upsert).
  const since = (patch: string) => fast || patched(patch);
  let steps = stepsOf(fast);
  let admission: Admission | undefined;
  let providerEventPending = false;
  const progress: Progress = {
    status: 'queued',
    stage: 'admission',
    queuePosition: null,
    logs: [],
    logCount: 0,
  };

  // Everything a cancel may stop; an operator's cancel of the whole workflow reaches it too.
  const work = new CancellationScope();
  let pastPointOfNoReturn = false;

  setHandler(admissionUpdate, async () => {
    await condition(() => admission !== undefined);
    return admission!;
  });
  setHandler(progressQuery, () => progress);
  setHandler(providerEventSignal, () => {
    providerEventPending = true;
  });
  let capacityGranted = false;
  setHandler(capacityGrantedSignal, () => {
    capacityGranted = true;
  });
  setHandler(cancelUpdate, () => work.cancel(), {
    validator: () => {
      const refusal = notCancelable(progress.status, pastPointOfNoReturn);
      if (refusal) throw ApplicationFailure.nonRetryable(refusal, 'not_cancelable');
    },
  });

  // The API starts the workflow with the status attribute `queued`.
  let upserted: GenerationStatus = 'queued';
  const setStatus = (status: GenerationStatus, stage: string) => {
    progress.status = status;
    progress.stage = stage;
    if (fast && status === upserted) return;
    upsertSearchAttributes([{ key: StatusKey, value: status }]);
    upserted = status;
  };

  let holdsSlot = false;
  /** Waits in Velro's queue for a slot of the provider: its credits are reserved already. */
  const waitForSlot = async () => {
    const ticket = await steps.requestCapacity(input);
    if (ticket.granted) return;
    setStatus('queued', 'waiting for capacity');
    progress.queuePosition = ticket.position;
    const giveUpAt = Date.now() + ticket.maxWaitMs;
    while (!capacityGranted) {
      const left = giveUpAt - Date.now();
      if (left <= 0) {
        throw ApplicationFailure.nonRetryable(
          `no ${input.provider} capacity became free within ${Math.round(ticket.maxWaitMs / 1000)} s`,
          'capacity_timeout',
        );
      }
      if (await condition(() => capacityGranted, Math.min(ticket.recheckMs, left))) break;
      const check = await steps.checkCapacity({ generationId: input.generationId, provider: input.provider });
      if (check.granted) break;
      progress.queuePosition = check.position;
    }
    progress.queuePosition = null;
  };
  /** Gives the slot back (or leaves the queue), once; not cancellable. */
  const giveSlotBack = async (reason: string) => {
    if (!holdsSlot) return;
    await CancellationScope.nonCancellable(() =>
      steps.releaseCapacity({ generationId: input.generationId, provider: input.provider, reason }),
    );
    holdsSlot = false;
  };

  // The worker's choice (admission's answer); generations started before that carry the API's.
  let pollInitialMs: number;
  try {
    const admitted = await admitGeneration(input);
    admission = { admitted: true, reservationId: admitted.reservationId };
    pollInitialMs = input.pollInitialMs ?? admitted.pollInitialMs;
  } catch (err) {
    const refused = rejection(err);
    admission = refused;
    setStatus('failed', 'rejected');
    await afterHandlers();
    return { status: 'failed', error: { code: refused.code, message: refused.message }, assetIds: [] };
  }

  let requestId: string | undefined;
  // What the provider sees after submit: the input with its images resolved, except inline ones
  // (data URIs, up to REPLICATE_DATA_URI_MAX_BYTES), which only submit needs and which would
  // otherwise be recorded in the history once per poll. The image field stays set either way, so
  // every call picks the same endpoint.
  let job: GenerationInput = input;
  try {
    const assetIds = await work.run(async () => {
      // A cancel that arrived during admission stops here, before anything is paid for at the provider.
      if (CancellationScope.current().consideredCancelled)
        throw new CancelledFailure('canceled before submit');
      if (since(CAPACITY_PATCH)) {
        // From the request on, the slot is given back on every way out (below, and in the catch).
        holdsSlot = true;
        await waitForSlot();
      }
      let submitted = input;
      if (IMAGE_FIELDS.some((f) => input.input[f] !== undefined) && since(INPUT_IMAGES_PATCH)) {
        setStatus('running', 'preparing inputs');
        const resolved = await resolveInputImages(input);
        submitted = { ...input, input: { ...input.input, ...resolved } };
        const kept = Object.entries(resolved).filter(([, value]) => !value.startsWith('data:'));
        job = { ...input, input: { ...input.input, ...Object.fromEntries(kept) } };
      }
      setStatus('running', 'submitting');
      // Not cancellable: once the job is submitted we must learn its id, to cancel it at the provider.
      const accepted = await CancellationScope.nonCancellable(() => submitToProvider(submitted));
      requestId = accepted.requestId;
      // The provider's answer right after the submit stands for the first poll.
      let firstStatus = fast ? accepted.status : undefined;

      setStatus('running', 'waiting for provider');
      const deadline = Date.now() + input.deadlineSeconds * 1000;
      let interval = pollInitialMs;
      // Providers answer every poll with the latest line(s) of their log, seen before or not.
      let lastLogs: string[] = [];
      for (;;) {
        const status = firstStatus ?? (await steps.checkProvider({ ...job, requestId }));
        firstStatus = undefined;
        progress.queuePosition = status.state === 'queued' ? (status.queuePosition ?? null) : null;
        const added = linesAfter(lastLogs, status.logs);
        lastLogs = status.logs;
        progress.logs = [...progress.logs, ...added].slice(-MAX_PROGRESS_LOGS);
        progress.logCount += added.length;
        if (status.state === 'failed')
          throw ApplicationFailure.nonRetryable(status.error.message, status.error.code);
        if (status.state === 'succeeded') break;
        const left = deadline - Date.now();
        if (left <= 0) {
          throw ApplicationFailure.nonRetryable(
            `the provider did not finish within ${input.deadlineSeconds} s`,
            'provider_timeout',
          );
        }
        await condition(() => providerEventPending, Math.min(interval, left));
        providerEventPending = false;
        interval = Math.min(interval * 1.5, POLL_MAX_INTERVAL_MS);
      }

      const store = () => storeOutputs({ ...job, requestId: requestId! });
      const pointOfNoReturn = since(POINT_OF_NO_RETURN_PATCH);
      // The provider has been paid: from here on the generation is stored and charged, whatever
      // cancel arrives (the cancel update refuses, a workflow cancel waits behind this scope).
      // Generations started before this stored cancellably, as they did.
      if (pointOfNoReturn) pastPointOfNoReturn = true;
      // The provider's job has ended: its slot is free for the next in turn.
      await giveSlotBack('the provider finished');
      setStatus('running', 'storing outputs');
      return pointOfNoReturn ? CancellationScope.nonCancellable(store) : store();
    });

    // Once the outputs are kept, a cancel no longer applies: settle the charge whatever happens.
    await CancellationScope.nonCancellable(() =>
      steps.completeGeneration({ userId: input.userId, generationId: input.generationId }),
    );
    setStatus('succeeded', 'done');
    await notifyClient(input, since(WEBHOOKS_PATCH), steps.createWebhookEvent);
    await afterHandlers();
    return { status: 'succeeded', assetIds };
  } catch (err) {
    const canceled = isCancellation(err);
    const error = canceled
      ? { code: 'canceled', message: 'The generation was canceled.' }
      : failureOf(err, input);
    log.info('generation failed; refunding', { generationId: input.generationId, code: error.code });
    // A cancel's way out runs as normal activities: the cancel update is answered with the workflow
    // task that schedules the first of them, not held behind local ones in that same task.
    if (canceled) steps = stepsOf(false);
    // Refund even though the workflow itself may be canceled.
    await CancellationScope.nonCancellable(async () => {
      if (requestId) {
        await steps
          .cancelAtProvider({ ...job, requestId })
          .catch((e) => log.warn('cancel at provider failed', { e }));
      }
      await giveSlotBack(canceled ? 'canceled' : `failed: ${error.code}`);
      await steps.refundAndEnd({
        userId: input.userId,
        generationId: input.generationId,
        status: canceled ? 'canceled' : 'failed',
        error,
      });
    });
    setStatus(canceled ? 'canceled' : 'failed', 'refunded');
    await notifyClient(input, since(WEBHOOKS_PATCH), steps.createWebhookEvent);
    await afterHandlers();
    return { status: canceled ? 'canceled' : 'failed', error, assetIds: [] };
  }
}

/**
 * The generation has ended and is settled: record its webhook event, then start one delivery
 * workflow per target (the generation's webhookUrl, and every registered endpoint that wants the
 * event). Deliveries are children with ParentClosePolicy ABANDON: they outlive this workflow, their
 * start is recorded in its history, and their ids follow from the event id and the target, so no
 * replay, retry or reset sends an event twice. Never fails and never touches credits; not cancellable.
 */
async function notifyClient(
  input: GenerationInput,
  webhooksExisted: boolean,
  createWebhookEvent: Activities['createWebhookEvent'],
): Promise<void> {
  if (!webhooksExisted) return;
  await CancellationScope.nonCancellable(async () => {
    try {
      const notice = await createWebhookEvent({
        userId: input.userId,
        generationId: input.generationId,
        webhookUrl: input.webhookUrl,
      });
      await Promise.all(
        notice.deliveries.map(async ({ deliveryId, workflowId }) => {
          try {
            await startChild<typeof WebhookDeliveryWorkflow>('WebhookDeliveryWorkflow', {
              workflowId,
              args: [{ userId: input.userId, deliveryId, eventId: notice.eventId!, retry: notice.retry }],
              parentClosePolicy: ParentClosePolicy.ABANDON,
              workflowIdReusePolicy: 'REJECT_DUPLICATE',
              typedSearchAttributes: [{ key: UserIdKey, value: input.userId }],
            });
          } catch (err) {
            // Already started (a reset replayed this step): that delivery is under way or done.
            if ((err as Error).name !== 'WorkflowExecutionAlreadyStartedError') throw err;
          }
        }),
      );
    } catch (err) {
      log.warn('webhooks could not be started', { generationId: input.generationId, err });
    }
  });
}

/** The steps a generation runs as local activities under FEWER_ROUND_TRIPS_PATCH, else as normal ones. */
function stepsOf(fast: boolean) {
  if (!fast) {
    return {
      requestCapacity,
      checkCapacity,
      releaseCapacity,
      checkProvider,
      completeGeneration,
      refundAndEnd,
      cancelAtProvider,
      createWebhookEvent,
    };
  }
  return {
    requestCapacity: local.capacity.requestCapacity,
    checkCapacity: local.capacity.checkCapacity,
    releaseCapacity: local.release.releaseCapacity,
    checkProvider,
    completeGeneration: local.settle.completeGeneration,
    refundAndEnd: local.settle.failGeneration,
    cancelAtProvider: local.settle.cancelAtProvider,
    createWebhookEvent: local.webhookEvent.createWebhookEvent,
  };
}

/** Lets running update handlers answer before the workflow closes, even when it was canceled. */
function afterHandlers(): Promise<void> {
  return CancellationScope.nonCancellable(() => condition(allHandlersFinished));
}

/** Why a cancel no longer applies, or undefined when it still does. */
function notCancelable(status: GenerationStatus, pastPointOfNoReturn: boolean): string | undefined {
  if (status === 'succeeded') return 'This generation has already succeeded and was charged.';
  if (isTerminal(status)) return 'This generation has already ended.';
  if (pastPointOfNoReturn)
    return 'The provider has finished this generation: it is being stored and charged.';
  return undefined;
}

/**
 * The lines of a provider's answer that are new since its previous answer: `current` and `previous`
 * are each the end of the provider's log, so the longest end of `previous` that starts `current`
 * was reported already. (Providers report only the latest lines, so the same line twice in a row
 * is one line.)
 */
function linesAfter(previous: string[], current: string[]): string[] {
  for (let overlap = Math.min(previous.length, current.length); overlap > 0; overlap--) {
    const tail = previous.slice(previous.length - overlap);
    if (tail.every((line, i) => line === current[i])) return current.slice(overlap);
  }
  return current;
}

/** The admission refusals the admission activity names (its failure types), by the API's code. */
const REFUSALS = new Map<string, AdmissionRefusal>([
  ['InsufficientCredits', 'insufficient_credits'],
  ['SpendLimitExceeded', 'spend_limit_exceeded'],
  ['TeamForbidden', 'forbidden'],
  ['TeamNotFound', 'not_found'],
]);

function rejection(err: unknown): Admission & { admitted: false } {
  const cause = applicationFailureIn(err);
  const code = cause?.type ? REFUSALS.get(cause.type) : undefined;
  if (cause && code) {
    const detail = cause.details?.[0];
    return {
      admitted: false,
      code,
      message: cause.message,
      ...(typeof detail === 'string' ? { detail } : {}),
    };
  }
  return { admitted: false, code: 'unavailable', message: 'Credits could not be reserved; try again.' };
}

/**
 * A machine-readable reason from an activity or provider failure. Activities name the failures they
 * mean with snake_case codes and messages written for clients; anything else is unexpected, and its
 * message (paths, SQL, stack) goes to the worker's log, never to the client.
 */
function failureOf(err: unknown, input: GenerationInput): GenerationError {
  const e = applicationFailureIn(err);
  if (e?.type && /^[a-z][a-z0-9_]*$/.test(e.type)) return { code: e.type, message: e.message };
  log.error('generation failed with an unexpected error', {
    generationId: input.generationId,
    error: err instanceof Error ? `${err.message}${e && e !== err ? `: ${e.message}` : ''}` : String(err),
  });
  return {
    code: 'internal_error',
    message: `Something went wrong on our side with generation ${input.generationId}; its credits were refunded.`,
  };
}

/** The ApplicationFailure an activity threw, under the ActivityFailure that wraps it. */
function applicationFailureIn(err: unknown): ApplicationFailure | undefined {
  for (let e = err; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof ApplicationFailure) return e;
  }
  return undefined;
}
