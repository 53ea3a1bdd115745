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
import { loadVisibleGeneration, readVisibleGeneration, type GenerationRow } from '../../lib/generations/view';
import { LedgerError } from '../../lib/ledger/errors';
import { derivedUuid } from '../../lib/ledger/ids';
import type { ProviderName } from '../../lib/providers/names';
import { getProject } from '../../lib/projects/store';
import { requireTeamRole } from '../../lib/teams/store';
import {
  admissionUpdate,
  cancelUpdate,
  generationWorkflowId,
  ModelKey,
  ProjectIdKey,
  StatusKey,
  TeamIdKey,
  UserIdKey,
  type Admission,
  type GenerationInput,
} from '../../workflows/definitions';
import type { GenerationWorkflow } from '../../workflows/generation';
import { ledgerProblem } from '../ledger-problems';
import { ApiError, notFound, unavailable } from '../errors';
import type { Caller } from '../plugins/auth';
import { refuseImageFieldsNotTaken, resolveInputRefs, type InputRefDeps } from './input-refs';
import { answeringTeamRefusals, teamOf } from './team-access';

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
  /** Client image URLs are checked against the webhook URL policy (api/services/input-refs.ts). */
  inputUrlPolicy: InputRefDeps['inputUrlPolicy'];
  /** VELRO_PUBLIC_URL: an upload's own URL is recognised as that upload. */
  publicUrl: string;
  /** Name resolution for image URL hosts (tests pin it). */
  lookup?: InputRefDeps['lookup'];
  log: { warn(details: object, message: string): void };
}

export interface SubmitBody {
  model: string;
  input: Record<string, unknown>;
  projectId?: string | null;
  teamId?: string | null;
  webhookUrl?: string | null;
  priority?: number;
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

const teamMismatch = (message: string) =>
  new ApiError(400, 'invalid_request', `teamId: ${message}`, { errors: [{ path: 'teamId', message }] });

/**
 * The project and team a submit is for: a team project implies its team (another teamId is a 400),
 * a personal project allows none; without a project, the named team or a team key's own. The
 * caller must be a member (or higher) of that team: checked here for a clear answer before anything
 * starts, and again by the database when the credits are reserved.
 */
async function ownerOfSubmit(
  db: Db,
  caller: Caller,
  body: SubmitBody,
): Promise<{ projectId: string | null; teamId: string | null }> {
  const projectId = body.projectId ?? null;
  // A personal generation outside any project: nothing to check, so no transaction either.
  if (!projectId && !teamOf(caller, body.teamId)) return { projectId: null, teamId: null };
  return withUserTx(db, caller.id, (tx) =>
    answeringTeamRefusals(async () => {
      let teamId = teamOf(caller, body.teamId);
      if (projectId) {
        const project = await getProject(tx, projectId);
        if (!project) throw notFound('Project');
        if (project.team_id === null && body.teamId)
          throw teamMismatch(`projectId ${projectId} is a personal project; leave teamId out`);
        if (project.team_id !== null && body.teamId && body.teamId !== project.team_id)
          throw teamMismatch(`projectId ${projectId} belongs to another team than ${body.teamId}`);
        teamId = project.team_id;
      }
      if (teamId) await requireTeamRole(tx, teamId, 'member');
      return { projectId, teamId };
    }),
  );
}

/** The problem a refused admission answers with. */
function refusalProblem(model: ModelDefinition, refusal: Admission & { admitted: false }): ApiError {
  switch (refusal.code) {
    case 'insufficient_credits':
      return new ApiError(
        402,
        'insufficient_credits',
        `${model.id} costs ${model.credits} credits. ${refusal.message}`,
      );
    case 'unavailable':
      return unavailable(refusal.message);
    default:
      // The team's refusals, as the database gave them at the reservation (lib/ledger/errors.ts).
      return ledgerProblem(
        new LedgerError(refusal.code, refusal.message, refusal.detail ?? null),
        'Team not found.',
      );
  }
}

/**
 * Validates a submit, then starts the generation's workflow with an update that returns once the
 * workflow has reserved the credits (or refused to). Returns the new generation's id. The first
 * poll interval is the worker's to choose (its admission returns it), not the API's.
 */
export async function submitGeneration(
  deps: GenerationDeps,
  caller: Caller,
  body: SubmitBody,
  idempotencyKey: string | null,
): Promise<string> {
  const userId = caller.id;
  const model = findModel(body.model);
  if (!model) throw new ApiError(400, 'invalid_request', `model: unknown model ${body.model}`);
  refuseImageFieldsNotTaken(model, body.input);
  const valid = validateInput(model, body.input);
  const { projectId, teamId } = await ownerOfSubmit(deps.db, caller, body);
  const input = await resolveInputRefs(deps, userId, model, valid, { teamId });

  // With an Idempotency-Key the id, and so the workflow id, follows from the key: concurrent
  // duplicates meet at the same workflow (USE_EXISTING) and create one generation.
  const generationId = idempotencyKey
    ? derivedUuid(`velro:generation:${userId}:${idempotencyKey}`)
    : randomUUID();
  const workflowInput: GenerationInput = {
    generationId,
    userId,
    teamId,
    projectId,
    model: model.id,
    input,
    credits: model.credits,
    provider: deps.provider,
    deadlineSeconds: model.deadlineSeconds,
    webhookUrl: body.webhookUrl ?? null,
    ...(body.priority !== undefined ? { priority: body.priority } : {}),
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
      ...(teamId ? [{ key: TeamIdKey, value: teamId }] : []),
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
    await temporal
      .withDeadline(Date.now() + CANCEL_TIMEOUT_MS, () =>
        temporal.workflow.getHandle(generationWorkflowId(generationId)).cancel(),
      )
      .catch(() => undefined);
    throw unavailable('Generations cannot be started right now; try again shortly.');
  }
  if (!admission.admitted) throw refusalProblem(model, admission);
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

/** The user's generation, or its team's (404 when there is none with this id it may see). */
export async function visibleGeneration(
  { db }: Pick<GenerationDeps, 'db'>,
  userId: string,
  id: string,
): Promise<GenerationRow> {
  const row = await readVisibleGeneration(db, userId, id);
  if (!row) throw notFound('Generation');
  return row;
}

/**
 * Cancels the user's generation and answers it as it is then. A team generation may be canceled by
 * its creator while a member (or higher), or by an admin; a viewer or another member gets 403. One
 * that has succeeded (and was charged) is refused with 409 `not_cancelable`, as is one past its
 * point of no return (the workflow decides); one that already failed or was canceled is answered
 * as it is.
 */
export async function cancelGeneration(
  deps: Pick<GenerationDeps, 'db' | 'temporal'>,
  userId: string,
  id: string,
): Promise<GenerationRow> {
  const row = await withUserTx(deps.db, userId, async (tx) => {
    const found = await loadVisibleGeneration(tx, id);
    if (!found) throw notFound('Generation');
    const teamId = found.team_id;
    if (teamId) {
      const needed = found.user_id === userId ? 'member' : 'admin';
      await answeringTeamRefusals(() => requireTeamRole(tx, teamId, needed));
    }
    return found;
  });
  if (row.status === 'succeeded') {
    throw new ApiError(409, 'not_cancelable', 'This generation has already succeeded and was charged.');
  }
  if (!isTerminal(row.status)) {
    try {
      await askWorkflowToCancel(deps.temporal, row.id);
    } catch (err) {
      // Refused because it ended meanwhile as failed or canceled: that is what the caller wanted.
      if (!(err instanceof ApiError && err.code === 'not_cancelable')) throw err;
      const now = await visibleGeneration(deps, userId, row.id);
      if (now.status !== 'failed' && now.status !== 'canceled') throw err;
      return now;
    }
  }
  return visibleGeneration(deps, userId, row.id);
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
    // FAILED_PRECONDITION: the workflow task that took the update failed or timed out (an
    // overloaded worker); the update was not applied, so asking again is safe.
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isDeadline(err) || grpcCodeOf(err) === 9) {
      throw unavailable('The generation could not be reached in time; try again.', 1);
    }
    throw err;
  }
}

function isDeadline(err: unknown): boolean {
  return (err as { code?: number })?.code === 4; // gRPC DEADLINE_EXCEEDED
}

/** The gRPC status code under a client error (a ServiceError wraps the gRPC one as its cause). */
function grpcCodeOf(err: unknown): number | undefined {
  for (let e = err; e; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}
