import { log } from '@temporalio/activity';
import { findModel } from '../lib/catalog/models';
import { checkSlot, releaseSlot, requestSlot, type SlotAnswer } from '../lib/capacity/store';
import type { ProviderName } from '../lib/providers/names';
import type { GenerationInput } from '../workflows/definitions';
import type { ActivityDeps, CapacityDeps } from './deps';

/** The answer a waiting workflow acts on; the worker's settings go along, recorded in its history. */
export interface CapacityTicket {
  granted: boolean;
  /** Where it waits (1: next); null once granted. */
  position: number | null;
  /** How long to wait for word of the grant before checking again. */
  recheckMs: number;
  /** How long to wait in all before giving up. */
  maxWaitMs: number;
}

export interface SlotOf {
  generationId: string;
  provider: ProviderName;
}

/** The generation's default priority within its account (1-10). */
export const DEFAULT_GENERATION_PRIORITY = 5;

/** Tells the workflows granted a slot; one that misses the word finds out at its next check. */
export async function tellGranted(capacity: CapacityDeps, granted: string[]): Promise<void> {
  if (granted.length === 0) return;
  try {
    await capacity.signalGranted(granted);
  } catch (err) {
    log.warn('could not tell every granted generation', { granted, error: String(err) });
  }
}

export function capacityActivities({ systemDb, capacity }: ActivityDeps) {
  const tell = (granted: string[]) => tellGranted(capacity, granted);

  const ticket = (answer: Omit<SlotAnswer, 'grantedOthers'>): CapacityTicket => ({
    // A request released while its workflow still asks (the reconciler freed it) is not waited on.
    granted: answer.state !== 'waiting',
    position: answer.position,
    recheckMs: capacity.recheckMs,
    maxWaitMs: capacity.maxWaitSeconds * 1000,
  });

  return {
    /**
     * Queues the generation for a slot of its provider (its credits are reserved by now) and grants
     * what is free, in fair order across accounts. Idempotent: the request is the generation's.
     */
    async requestCapacity(input: GenerationInput): Promise<CapacityTicket> {
      const model = findModel(input.model);
      if (!model) throw new Error(`unknown model ${input.model}`);
      const answer = await requestSlot(systemDb, capacity.limits, {
        generationId: input.generationId,
        provider: input.provider,
        accountId: input.teamId ?? input.userId,
        accountKind: input.teamId ? 'team' : 'user',
        mediaKind: model.kind,
        priority: input.priority ?? DEFAULT_GENERATION_PRIORITY,
      });
      await tell(answer.grantedOthers);
      return ticket(answer);
    },

    /** A waiter's own look at the queue, when no word of its grant came (it grants nothing). */
    async checkCapacity({ generationId }: SlotOf): Promise<CapacityTicket> {
      return ticket(await checkSlot(systemDb, generationId));
    },

    /** Gives the slot back (or leaves the queue) and passes what it frees on. Idempotent. */
    async releaseCapacity({ generationId, reason }: SlotOf & { reason: string }): Promise<void> {
      await tell(await releaseSlot(systemDb, capacity.limits, generationId, reason));
    },
  };
}
