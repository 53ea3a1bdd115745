import type { Tx } from '../db/pool';

// An account's capacity overrides (account_limits, db/migrations/012_capacity.sql), read and written
// by an admin through definer functions that check the admin role in the database too.

export interface AccountLimitsRow {
  account_kind: 'user' | 'team';
  max_video: number | null;
  max_image: number | null;
  priority: number | null;
  updated_at: Date | null;
}

export interface LimitsChange {
  maxVideo?: number | null;
  maxImage?: number | null;
  priority?: number | null;
}

/** The account's overrides (all null when it has none), or undefined when no user or team has that id. */
export async function accountLimits(tx: Tx, accountId: string): Promise<AccountLimitsRow | undefined> {
  const { rows } = await tx.query<AccountLimitsRow>(
    'SELECT account_kind, max_video, max_image, priority, updated_at FROM admin_account_limits($1)',
    [accountId],
  );
  return rows[0];
}

/**
 * Sets the given overrides (a null sets that one back to the default; one left out stays), as the
 * admin of the transaction. Undefined when no user or team has that id.
 */
export async function setAccountLimits(
  tx: Tx,
  accountId: string,
  change: LimitsChange,
): Promise<AccountLimitsRow | undefined> {
  const clear = Object.entries({
    maxVideo: change.maxVideo,
    maxImage: change.maxImage,
    priority: change.priority,
  })
    .filter(([, v]) => v === null)
    .map(([k]) => k);
  const { rows } = await tx.query<AccountLimitsRow & { account_id: string | null }>(
    `SELECT account_id, account_kind, max_video, max_image, priority, updated_at
     FROM admin_set_account_limits($1, $2, $3, $4, $5)`,
    [accountId, change.maxVideo ?? null, change.maxImage ?? null, change.priority ?? null, clear],
  );
  const row = rows[0];
  return row?.account_id ? row : undefined;
}

/** An account's priority without an override (capacity_default_priority() in the database). */
export const DEFAULT_ACCOUNT_PRIORITY = 5;
