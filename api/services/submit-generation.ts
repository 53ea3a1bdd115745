import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { findModel, type ModelDefinition } from '../../lib/catalog/models';
import { activeProvider } from '../../lib/config';
import { withUserTx } from '../../lib/db/pool';
import { derivedUuid } from '../../lib/ledger/ids';
import {
  admissionUpdate,
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
import type { Caller } from '../plugins/auth';

export interface SubmitBody {
  model: string;
  input: Record<string, unknown>;
  projectId?: string | null;
  webhookUrl?: string | null;
}

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

function pollInitialMs(app: FastifyInstance, provider: GenerationInput['provider']): number {
  if (provider !== 'local') return app.config.PROVIDER_POLL_INITIAL_MS;
  return Math.min(1000, Math.max(100, Math.round(app.config.LOCAL_PROVIDER_LATENCY_MS / 4)));
}

/**
 * Validates a submit, then starts the generation's workflow with an update that returns once the
 * workflow has reserved the credits (or refused to). Returns the new generation's id.
 */
export async function submitGeneration(
  app: FastifyInstance,
  caller: Caller,
  body: SubmitBody,
  idempotencyKey: string | null,
): Promise<string> {
  const model = findModel(body.model);
  if (!model) throw new ApiError(400, 'invalid_request', `model: unknown model ${body.model}`);
  const input = validateInput(model, body.input);
  const projectId = body.projectId ?? null;
  if (projectId) {
    const found = await withUserTx(app.db, caller.id, (tx) =>
      tx.query('SELECT 1 FROM projects WHERE id = $1', [projectId]),
    );
    if (found.rowCount === 0) throw notFound('Project');
  }

  // With an Idempotency-Key the id, and so the workflow id, follows from the key: concurrent
  // duplicates meet at the same workflow (USE_EXISTING) and create one generation.
  const generationId = idempotencyKey
    ? derivedUuid(`velro:generation:${caller.id}:${idempotencyKey}`)
    : randomUUID();
  const provider = activeProvider(app.config);
  const workflowInput: GenerationInput = {
    generationId,
    userId: caller.id,
    projectId,
    model: model.id,
    input,
    credits: model.credits,
    provider,
    deadlineSeconds: model.deadlineSeconds,
    pollInitialMs: pollInitialMs(app, provider),
    webhookUrl: body.webhookUrl ?? null,
  };
  const startOp = new WithStartWorkflowOperation<typeof GenerationWorkflow>('GenerationWorkflow', {
    workflowId: generationWorkflowId(generationId),
    taskQueue: app.config.TEMPORAL_TASK_QUEUE,
    args: [workflowInput],
    workflowIdConflictPolicy: 'USE_EXISTING',
    // An id whose workflow has closed is never run again: that would replay a settled reservation.
    workflowIdReusePolicy: 'REJECT_DUPLICATE',
    typedSearchAttributes: [
      { key: UserIdKey, value: caller.id },
      { key: ModelKey, value: model.id },
      { key: StatusKey, value: 'queued' },
      ...(projectId ? [{ key: ProjectIdKey, value: projectId }] : []),
    ],
  });

  let admission: Admission;
  try {
    admission = await app.temporal.withDeadline(Date.now() + app.config.ADMISSION_TIMEOUT_MS, () =>
      app.temporal.workflow.executeUpdateWithStart(admissionUpdate, { startWorkflowOperation: startOp }),
    );
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return alreadyRun(app, caller, generationId);
    app.log.warn({ err, generationId }, 'admission did not complete');
    // The workflow may still run later; cancel it so that whatever it reserved is refunded.
    await app.temporal.workflow
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
async function alreadyRun(app: FastifyInstance, caller: Caller, generationId: string): Promise<string> {
  const found = await withUserTx(app.db, caller.id, (tx) =>
    tx.query('SELECT 1 FROM generations WHERE id = $1', [generationId]),
  );
  if (found.rowCount) return generationId;
  throw new ApiError(
    409,
    'idempotency_key_used',
    'This Idempotency-Key belongs to a generation that was not admitted. Use a new key to try again.',
  );
}

/** Resolves when the generation's workflow has finished, or after `seconds`, whichever comes first. */
export async function waitUntilDone(
  app: FastifyInstance,
  generationId: string,
  seconds: number,
): Promise<void> {
  const handle = app.temporal.workflow.getHandle(generationWorkflowId(generationId));
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), seconds * 1000);
  try {
    await app.temporal.withAbortSignal(controller.signal, () => handle.result());
  } catch {
    // Time is up (or the workflow ended abnormally): the caller reads the current state either way.
  } finally {
    clearTimeout(timer);
  }
}
