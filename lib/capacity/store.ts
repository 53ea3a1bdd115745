import { withSystemTx, type Db, type SystemDb, type Tx } from '../db/pool';
import type { MediaKind } from '../catalog/models';
import type { ProviderName } from '../providers/names';

// Provider slots (db/migrations/012_capacity.sql). Grants and releases act across accounts, so they
// run on the velro_system login, each in one short transaction; the API reads positions and counts
// through definer functions.

/** What one deployment's pools allow: the worker's configuration, handed to every grant. */
export interface CapacityLimits {
  /** One deployment's pools: `<namespace>/<task queue>`. */
  scope: string;
  /** Jobs in flight per provider. */
  providerCaps: Record<ProviderName, number>;
  /** Default in-flight caps of an account, by media kind (an admin overrides them per account). */
  accountCaps: Record<MediaKind, number>;
  /** A waiting generation's priority grows by 1 per this many seconds. */
  agingSeconds: number;
}

export interface SlotRequest {
  generationId: string;
  provider: ProviderName;
  /** The paying account: the team of a team generation, else the user. */
  accountId: string;
  accountKind: 'user' | 'team';
  mediaKind: MediaKind;
  /** 1-10, within the account's own work. */
  priority: number;
}

export type SlotState = 'waiting' | 'granted' | 'released';

export interface SlotAnswer {
  state: SlotState;
  /** Where it waits (1: next); null unless waiting. */
  position: number | null;
  /** Other generations this call granted a slot to: their workflows are to be told. */
  grantedOthers: string[];
}

export const WAITING_STAGE = 'waiting for capacity';

async function grant(tx: Tx, limits: CapacityLimits, provider: ProviderName): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    'SELECT capacity_grant AS id FROM capacity_grant($1, $2, $3, $4, $5, $6)',
    [
      limits.scope,
      provider,
      limits.providerCaps[provider],
      limits.accountCaps.video,
      limits.accountCaps.image,
      limits.agingSeconds,
    ],
  );
  return rows.map((r) => r.id);
}

async function stateOf(tx: Tx, generationId: string): Promise<SlotState | undefined> {
  const { rows } = await tx.query<{ state: SlotState }>(
    `SELECT CASE WHEN released_at IS NOT NULL THEN 'released'
                 WHEN granted_at IS NOT NULL THEN 'granted' ELSE 'waiting' END AS state
     FROM capacity_requests WHERE generation_id = $1`,
    [generationId],
  );
  return rows[0]?.state;
}

/** The request's state, and where it waits while it does (a request not found counts as released). */
async function answerOf(tx: Tx, generationId: string): Promise<Omit<SlotAnswer, 'grantedOthers'>> {
  const state = (await stateOf(tx, generationId)) ?? 'released';
  if (state !== 'waiting') return { state, position: null };
  const positions = await queuePositions(tx, [generationId]);
  return { state, position: positions.get(generationId) ?? null };
}

/**
 * Queues the generation for a slot (once: asking again answers the request's state; a request
 * released while its generation still runs, as after an operator's reset to before it, queues
 * again) and grants
 * whatever the pool can grant now, in fair order. A generation left waiting shows the stage
 * `waiting for capacity`.
 */
export function requestSlot(db: SystemDb, limits: CapacityLimits, r: SlotRequest): Promise<SlotAnswer> {
  return withSystemTx(db, async (tx) => {
    await tx.query(
      `INSERT INTO capacity_requests (generation_id, scope, provider, account_id, account_kind, media_kind, priority)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (generation_id) DO UPDATE
         SET enqueued_at = clock_timestamp(), granted_at = NULL, released_at = NULL, release_reason = NULL
         WHERE capacity_requests.released_at IS NOT NULL
           AND (SELECT status FROM generations WHERE id = $1) NOT IN ('succeeded', 'failed', 'canceled')`,
      [r.generationId, limits.scope, r.provider, r.accountId, r.accountKind, r.mediaKind, r.priority],
    );
    const granted = await grant(tx, limits, r.provider);
    const answer = await answerOf(tx, r.generationId);
    if (answer.state === 'waiting') {
      await tx.query(
        `UPDATE generations SET stage = $2, updated_at = now()
         WHERE id = $1 AND status = 'queued' AND stage <> $2`,
        [r.generationId, WAITING_STAGE],
      );
    }
    return { ...answer, grantedOthers: granted.filter((id) => id !== r.generationId) };
  });
}

/**
 * The request's state now and where it waits: a waiter's own look, when no word of its grant came.
 * It grants nothing and takes no lock, so hundreds of waiters looking cost the pools' grants
 * nothing; grants come from releases, new requests and the reconciler's pass.
 */
export function checkSlot(db: SystemDb, generationId: string): Promise<Omit<SlotAnswer, 'grantedOthers'>> {
  return withSystemTx(db, (tx) => answerOf(tx, generationId));
}

/**
 * Gives the generation's slot back (or leaves the queue), once: a second release changes nothing.
 * Then grants what that frees. Answers the generations granted.
 */
export function releaseSlot(
  db: SystemDb,
  limits: CapacityLimits,
  generationId: string,
  reason: string,
): Promise<string[]> {
  return withSystemTx(db, async (tx) => {
    const { rows } = await tx.query<{ provider: ProviderName; scope: string }>(
      `UPDATE capacity_requests SET released_at = clock_timestamp(), release_reason = left($2, 200)
       WHERE generation_id = $1 AND released_at IS NULL RETURNING provider, scope`,
      [generationId, reason],
    );
    const released = rows[0];
    if (!released || released.scope !== limits.scope) return [];
    return grant(tx, limits, released.provider);
  });
}

/** A slot (held or waited for) of a generation that has ended without giving it back. */
export interface LeakedSlot {
  generationId: string;
  provider: ProviderName;
  model: string;
  input: Record<string, unknown>;
  /** The provider's job, when the slot was held and the job submitted: to be cancelled there first. */
  providerRequestId: string | null;
}

/**
 * The slots in one scope that generations which have ended still hold or wait for: their workflow
 * did not give them back (an operator's terminate runs none of its code).
 */
export async function leakedSlots(db: SystemDb, scope: string): Promise<LeakedSlot[]> {
  return withSystemTx(db, async (tx) => {
    const { rows } = await tx.query<{
      generation_id: string;
      provider: ProviderName;
      model: string;
      input: Record<string, unknown>;
      provider_request_id: string | null;
    }>(
      `SELECT r.generation_id, r.provider, g.model, g.input,
              CASE WHEN r.granted_at IS NOT NULL THEN g.provider_request_id END AS provider_request_id
       FROM capacity_requests r JOIN generations g ON g.id = r.generation_id
       WHERE r.scope = $1 AND r.released_at IS NULL AND g.status IN ('succeeded', 'failed', 'canceled')
       LIMIT 1000`,
      [scope],
    );
    return rows.map((r) => ({
      generationId: r.generation_id,
      provider: r.provider,
      model: r.model,
      input: r.input,
      providerRequestId: r.provider_request_id,
    }));
  });
}

/**
 * The reconciler's pass: releases these leaked slots (if their generations have ended), then grants
 * in every pool of the scope, which also makes up for any grant whose word was lost. Answers whom
 * it granted.
 */
export function freeLeakedSlots(
  db: SystemDb,
  limits: CapacityLimits,
  generationIds: string[],
): Promise<string[]> {
  return withSystemTx(db, async (tx) => {
    await tx.query(
      `UPDATE capacity_requests r SET released_at = clock_timestamp(), release_reason = 'reconciler: the generation had ended'
       FROM generations g
       WHERE g.id = r.generation_id AND r.generation_id = ANY($2::uuid[]) AND r.scope = $1
         AND r.released_at IS NULL AND g.status IN ('succeeded', 'failed', 'canceled')`,
      [limits.scope, generationIds],
    );
    const granted: string[] = [];
    for (const provider of Object.keys(limits.providerCaps) as ProviderName[]) {
      granted.push(...(await grant(tx, limits, provider)));
    }
    return granted;
  });
}

/** Slots in use and generations waiting in one scope, by provider and account kind (GET /metrics). */
export interface CapacityStat {
  provider: ProviderName;
  accountKind: 'user' | 'team';
  inUse: number;
  waiting: number;
}

export async function capacityStats(db: Db, scope: string): Promise<CapacityStat[]> {
  const { rows } = await db.query<{
    provider: ProviderName;
    account_kind: 'user' | 'team';
    in_use: number;
    waiting: number;
  }>('SELECT provider, account_kind, in_use, waiting FROM capacity_stats($1)', [scope]);
  return rows.map((r) => ({
    provider: r.provider,
    accountKind: r.account_kind,
    inUse: r.in_use,
    waiting: r.waiting,
  }));
}

/** Where these generations wait (1: next); generations not waiting are left out. */
export async function queuePositions(db: Db | Tx, ids: string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<{ generation_id: string; queue_position: number }>(
    'SELECT generation_id, queue_position FROM capacity_queue_positions($1)',
    [ids],
  );
  return new Map(rows.map((r) => [r.generation_id, r.queue_position]));
}
