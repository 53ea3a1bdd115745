import { randomUUID } from 'node:crypto';
import {
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import { findModel, type ModelDefinition } from '../../lib/catalog/models';
import { withUserTx, type Db } from '../../lib/db/pool';
import { isTerminal } from '../../lib/generations/status';
import { generationExists } from '../../lib/generations/store';
import { loadGeneration, type GenerationRow } from '../../lib/generations/view';
import { derivedUuid } from '../../lib/ledger/ids';
import type { ProviderName } from '../../lib/providers/names';
import { getProject } from '../../lib/projects/store';
import {
  admissionUpdate,
  cancelUpdate,
  generationWorkflowId,
  ModelKey,
  ProjectIdKey,
  StatusKey,
  UserIdKey,
  type Admission,
  type GenerationInput,
} from '../../workflows/definitions';
import type { GenerationWorkflow } from '../../workflows/generation';
import { ApiError, notFound } from '../errors';

// A generation's life as the API drives it: submit (start its workflow and wait for the credits to
// be reserved), wait until it is done, cancel. The workflow (workflows/generation.ts) does the rest.

/** What the generation's life needs: the database, Temporal, and a few configuration values. */
export interface GenerationDeps {
  db: Db;
  temporal: Client;
  /** TEMPORAL_TASK_QUEUE: where the generation workflows run. */
  taskQueue: string;
  /** The provider new generations go to (activeProvider of the configuration). */
  provider: ProviderName;
  /** ADMISSION_TIMEOUT_MS: how long a submit waits for the credits to be reserved before 503. */
  admissionTimeoutMs: number;
  log: { warn(details: object, message: string): void };
}

export interface SubmitBody {
  model: string;
  input: Record<string, unknown>;
  projectId?: string | null;
  webhookUrl?: string | null;
}

/** How long a cancel waits for the generation's workflow to take it before answering 503. */
const CANCEL_TIMEOUT_MS = 10_000;

function validateInput(model: ModelDefinition, input: unknown): GenerationInput['input'] {
  const parsed = model.input.safeParse(input);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((i: z.core.$ZodIssue) => ({
    path: ['input', ...i.path.map(String)].join('.'),
    message: i.message,
  }));
  throw new ApiError(400, 'invalid_request', errors.map((e) => `${e.path}: ${e.message}`).join('; '), {
    errors,
  });
}

/**
 * Validates a submit, then starts the generation's workflow with an update that returns once the
 * workflow has reserved the credits (or refused to). Returns the new generation's id. The first
 * poll interval is the worker's to choose (its admission returns it), not the API's.
 */
export async function submitGeneration(
  deps: GenerationDeps,
  userId: string,
  body: SubmitBody,
  idempotencyKey: string | null,
): Promise<string> {
  const model = findModel(body.model);
  if (!model) throw new ApiError(400, 'invalid_request', `model: unknown model ${body.model}`);
  const input = validateInput(model, body.input);
  const projectId = body.projectId ?? null;
  if (projectId) {
    const project = await withUserTx(deps.db, userId, (tx) => getProject(tx, projectId));
    if (!project) throw notFound('Project');
  }

  // With an Idempotency-Key the id, and so the workflow id, follows from the key: concurrent
  // duplicates meet at the same workflow (USE_EXISTING) and create one generation.
  const generationId = idempotencyKey
    ? derivedUuid(`velro:generation:${userId}:${idempotencyKey}`)
    : randomUUID();
  const workflowInput: GenerationInput = {
    generationId,
    userId,
    projectId,
    model: model.id,
    input,
    credits: model.credits,
    provider: deps.provider,
    deadlineSeconds: model.deadlineSeconds,
    webhookUrl: body.webhookUrl ?? null,
  };
  const startOp = new WithStartWorkflowOperation<typeof GenerationWorkflow>('GenerationWorkflow', {
    workflowId: generationWorkflowId(generationId),
    taskQueue: deps.taskQueue,
    args: [workflowInput],
    workflowIdConflictPolicy: 'USE_EXISTING',
    // An id whose workflow has closed is never run again: that would replay a settled reservation.
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    typedSearchAttributes: [
      { key: UserIdKey, value: userId },
      { key: ModelKey, value: model.id },
      { key: StatusKey, value: 'queued' },
      ...(projectId ? [{ key: ProjectIdKey, value: projectId }] : []),
    ],
  });

  const { temporal } = deps;
  let admission: Admission;
  try {
    admission = await temporal.withDeadline(Date.now() + deps.admissionTimeoutMs, () =>
      temporal.workflow.executeUpdateWithStart(admissionUpdate, { startWorkflowOperation: startOp }),
    );
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return alreadyRun(deps, userId, generationId);
    deps.log.warn({ err, generationId }, 'admission did not complete');
    // The workflow may still run later; cancel it so that whatever it reserved is refunded.
    await temporal.workflow
      .getHandle(generationWorkflowId(generationId))
      .cancel()
      .catch(() => undefined);
    throw new ApiError(503, 'unavailable', 'Generations cannot be started right now; try again shortly.', {
      headers: { 'retry-after': '5' },
    });
  }
  if (!admission.admitted) {
    if (admission.code === 'insufficient_credits') {
      throw new ApiError(
        402,
        'insufficient_credits',
        `${model.id} costs ${model.credits} credits. ${admission.message}`,
      );
    }
    throw new ApiError(503, 'unavailable', admission.message, { headers: { 'retry-after': '5' } });
  }
  return generationId;
}

/** The key's generation has run already (its stored answer was a 5xx, so the client retried). */
async function alreadyRun(deps: GenerationDeps, userId: string, generationId: string): Promise<string> {
  if (await withUserTx(deps.db, userId, (tx) => generationExists(tx, generationId))) return generationId;
  throw new ApiError(
    409,
    'idempotency_key_used',
    'This Idempotency-Key belongs to a generation that was not admitted. Use a new key to try again.',
  );
}

/** Resolves when the generation's workflow has finished, or after `seconds`, whichever comes first. */
export async function waitUntilDone(
  { temporal }: Pick<GenerationDeps, 'temporal'>,
  generationId: string,
  seconds: number,
): Promise<void> {
  const handle = temporal.workflow.getHandle(generationWorkflowId(generationId));
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), seconds * 1000);
  try {
    await temporal.withAbortSignal(controller.signal, () => handle.result());
  } catch {
    // Time is up (or the workflow ended abnormally): the caller reads the current state either way.
  } finally {
    clearTimeout(timer);
  }
}

/** The user's generation (404 when there is none with this id). */
export async function ownGeneration(
  { db }: Pick<GenerationDeps, 'db'>,
  userId: string,
  id: string,
): Promise<GenerationRow> {
  const row = await withUserTx(db, userId, (tx) => loadGeneration(tx, id));
  if (!row) throw notFound('Generation');
  return row;
}

/**
 * Cancels the user's generation and answers it as it is then. One that has succeeded (and was
 * charged) is refused with 409 `not_cancelable`, as is one past its point of no return (the
 * workflow decides); one that already failed or was canceled is answered as it is.
 */
export async function cancelGeneration(
  deps: Pick<GenerationDeps, 'db' | 'temporal'>,
  userId: string,
  id: string,
): Promise<GenerationRow> {
  const row = await ownGeneration(deps, userId, id);
  if (row.status === 'succeeded') {
    throw new ApiError(409, 'not_cancelable', 'This generation has already succeeded and was charged.');
  }
  if (!isTerminal(row.status)) {
    try {
      await askWorkflowToCancel(deps.temporal, row.id);
    } catch (err) {
      // Refused because it ended meanwhile as failed or canceled: that is what the caller wanted.
      if (!(err instanceof ApiError && err.code === 'not_cancelable')) throw err;
      const now = await ownGeneration(deps, userId, row.id);
      if (now.status !== 'failed' && now.status !== 'canceled') throw err;
      return now;
    }
  }
  return ownGeneration(deps, userId, row.id);
}

/**
 * Asks a running generation's workflow to cancel. The workflow decides, so the answer is exact: it
 * refuses (409 `not_cancelable`) once the provider has reported success, since from then on the
 * generation is stored and charged. A workflow that has already closed is not an error: the caller
 * reads how it ended.
 */
async function askWorkflowToCancel(temporal: Client, generationId: string): Promise<void> {
  const handle = temporal.workflow.getHandle(generationWorkflowId(generationId));
  try {
    await temporal.withDeadline(Date.now() + CANCEL_TIMEOUT_MS, () => handle.executeUpdate(cancelUpdate));
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause;
      if (cause instanceof ApplicationFailure && cause.type === 'not_cancelable') {
        throw new ApiError(409, 'not_cancelable', cause.message);
      }
      throw err;
    }
    if (err instanceof WorkflowNotFoundError) return; // closed between the read and the cancel
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isDeadline(err)) {
      throw new ApiError(503, 'unavailable', 'The generation could not be reached in time; try again.', {
        headers: { 'retry-after': '1' },
      });
    }
    throw err;
  }
}

function isDeadline(err: unknown): boolean {
  return (err as { code?: number })?.code === 4; // gRPC DEADLINE_EXCEEDED
}
