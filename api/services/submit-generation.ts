import { randomUUID } from 'node:crypto';
import { WithStartWorkflowOperation } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { findModel, type ModelDefinition } from '../../lib/catalog/models';
import { activeProvider } from '../../lib/config';
import { withUserTx } from '../../lib/db/pool';
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

/** How long the API waits for the workflow to decide admission before answering 503. */
const ADMISSION_TIMEOUT_MS = 10_000;

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
  if (provider !== 'local') return 2000;
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

  const generationId = randomUUID();
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
    typedSearchAttributes: [
      { key: UserIdKey, value: caller.id },
      { key: ModelKey, value: model.id },
      { key: StatusKey, value: 'queued' },
      ...(projectId ? [{ key: ProjectIdKey, value: projectId }] : []),
    ],
  });

  let admission: Admission;
  try {
    admission = await app.temporal.withDeadline(Date.now() + ADMISSION_TIMEOUT_MS, () =>
      app.temporal.workflow.executeUpdateWithStart(admissionUpdate, { startWorkflowOperation: startOp }),
    );
  } catch (err) {
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
