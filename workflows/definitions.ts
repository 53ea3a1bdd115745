// Names shared by the workflow, the API and the worker. Safe to import from workflow code.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { isTerminal, type GenerationStatus } from '../lib/generations/status';
import type { ProviderName } from '../lib/providers/names';
import { SEARCH_ATTRIBUTE_NAMES } from '../lib/temporal/search-attributes';

const NAMES = SEARCH_ATTRIBUTE_NAMES;
export const UserIdKey = defineSearchAttributeKey(NAMES.userId, SearchAttributeType.KEYWORD);
export const ModelKey = defineSearchAttributeKey(NAMES.model, SearchAttributeType.KEYWORD);
export const ProjectIdKey = defineSearchAttributeKey(NAMES.projectId, SearchAttributeType.KEYWORD);
export const StatusKey = defineSearchAttributeKey(NAMES.status, SearchAttributeType.KEYWORD);
export const TeamIdKey = defineSearchAttributeKey(NAMES.teamId, SearchAttributeType.KEYWORD);

export const generationWorkflowId = (generationId: string) => `generation-${generationId}`;

export { isTerminal, type GenerationStatus };

export interface GenerationInput {
  generationId: string;
  /** The creator: the worker acts as this user (a team generation's member, or a team key's bot). */
  userId: string;
  /**
   * The team whose account pays (the generation is the team's); null or absent for a personal one.
   * Optional: generations started before teams have none, and their histories replay.
   */
  teamId?: string | null;
  projectId: string | null;
  model: string;
  /** The model input, already validated against the model's schema by the API. */
  input: { prompt: string; seed?: number } & Record<string, unknown>;
  credits: number;
  provider: ProviderName;
  /** Bounds the wait for the provider; then cancel there and refund. */
  deadlineSeconds: number;
  /**
   * First interval between provider polls; grows with backoff. Set by the API in generations
   * started before the worker chose it (admission now answers it); kept so their histories replay.
   */
  pollInitialMs?: number;
  webhookUrl: string | null;
  /**
   * 1-10: the generation's place in its account's own queue for provider capacity (5 when absent,
   * as in generations started before it was asked for).
   */
  priority?: number;
}

/** Why admission refused: the ledger's refusal (LedgerError codes), or the worker could not reserve. */
export type AdmissionRefusal =
  'insufficient_credits' | 'spend_limit_exceeded' | 'forbidden' | 'not_found' | 'unavailable';

/**
 * The answer of the admission update: whether the credits were reserved. `detail`: the ledger's
 * DETAIL of a team refusal (the role needed; the spend limit as JSON {limit, remaining}).
 */
export type Admission =
  | { admitted: true; reservationId: string }
  | { admitted: false; code: AdmissionRefusal; message: string; detail?: string | null };

export interface GenerationError {
  code: string;
  message: string;
}

export interface Progress {
  status: GenerationStatus;
  stage: string;
  queuePosition: number | null;
  /** The latest provider log lines (at most 50). */
  logs: string[];
  /** How many log lines there have been in all. */
  logCount: number;
}

export interface GenerationOutcome {
  status: GenerationStatus;
  error?: GenerationError;
  assetIds: string[];
}

/** A provider webhook arrived: poll now rather than at the next interval. */
export interface ProviderEvent {
  requestId: string;
}

export const admissionUpdate = defineUpdate<Admission>('admission');
/**
 * Cancels the generation, unless it is past its point of no return (the provider reported success:
 * it will be stored and charged); then the update is rejected with an ApplicationFailure of type
 * `not_cancelable`, and nothing is recorded in the workflow's history.
 */
export const cancelUpdate = defineUpdate<void>('cancel');
export const providerEventSignal = defineSignal<[ProviderEvent]>('providerEvent');
/** A provider slot was granted to the generation (lib/capacity/store.ts): its turn has come. */
export const capacityGrantedSignal = defineSignal('capacityGranted');
export const progressQuery = defineQuery<Progress>('progress');

/** How a failed webhook delivery is retried: exponential backoff (×2) from `initialMs` up to `maxIntervalMs`. */
export interface WebhookRetryPolicy {
  initialMs: number;
  maxIntervalMs: number;
  /** Attempts in all, the first included. */
  maxAttempts: number;
}

/** One webhook to one target (a registered endpoint or a generation's webhookUrl). */
export interface WebhookDeliveryInput {
  userId: string;
  deliveryId: string;
  /** Also the `webhook-id` header: the same on every attempt. */
  eventId: string;
  retry: WebhookRetryPolicy;
}

/** How a delivery ended: received (2xx), given up, 410 Gone, or its endpoint was deleted or disabled. */
export type WebhookDeliveryStatus = 'delivered' | 'failed' | 'gone' | 'canceled';

/** What the end of a generation is to be told to: one delivery workflow per target. */
export interface WebhookNotice {
  deliveries: { deliveryId: string; workflowId: string }[];
  eventId: string | null;
  retry: WebhookRetryPolicy;
}

/** One workflow per (event, target), so a repeated notify can never send the same event twice. */
export const webhookDeliveryWorkflowId = (eventId: string, endpointId: string | null) =>
  `webhook-${eventId}-${endpointId ?? 'generation-url'}`;
