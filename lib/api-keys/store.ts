import { generateApiKey, hashApiKey } from '../auth/api-keys';
import type { Role } from '../auth/jwt';
import { newestFirst, type PageAfter } from '../db/keyset';
import { atPerUserCap } from '../db/per-user-cap';
import type { Db, Tx } from '../db/pool';

/** Active keys a user may hold at once. */
export const MAX_ACTIVE_API_KEYS = 100;

export interface ApiKeyRow {
  id: string;
  name: string;
  prefix: string;
  created_at: Date;
  last_used_at: Date | null;
}

/** An API key as clients see it: never the key itself. */
export interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
}

const COLUMNS = 'id, name, prefix, created_at, last_used_at';

export const toView = (k: ApiKeyRow): ApiKeyView => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  createdAt: k.created_at.toISOString(),
  lastUsedAt: k.last_used_at?.toISOString() ?? null,
});

// The functions over a Tx run in a withUserTx: row-level security scopes them to the caller's keys.

/**
 * A new key for the user: its row, and the key itself (only its hash is stored, so this is the one
 * time it is known). Undefined when the user already holds MAX_ACTIVE_API_KEYS active keys.
 */
export async function createApiKey(
  tx: Tx,
  userId: string,
  name: string,
): Promise<{ row: ApiKeyRow; key: string } | undefined> {
  const key = generateApiKey();
  const countActive = 'SELECT count(*)::int AS n FROM api_keys WHERE revoked_at IS NULL';
  if (await atPerUserCap(tx, 'api-keys', userId, countActive, MAX_ACTIVE_API_KEYS)) return undefined;
  const { rows } = await tx.query<ApiKeyRow>(
    `INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
    [userId, name, key.prefix, key.hash],
  );
  return { row: rows[0]!, key: key.key };
}

/** One page of the user's active keys, newest first (`limit + 1` rows: see newestFirst). */
export function listActiveApiKeys(tx: Tx, page: { after?: PageAfter; limit: number }): Promise<ApiKeyRow[]> {
  return newestFirst<ApiKeyRow>(tx, {
    select: `SELECT ${COLUMNS} FROM api_keys`,
    where: ['revoked_at IS NULL'],
    ...page,
  });
}

/** Whether an active key with this id was there to revoke. */
export async function revokeApiKey(tx: Tx, id: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    'UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL',
    [id],
  );
  return rowCount !== 0;
}

/**
 * Whose active key this is, with the user's current role (auth_api_key, a definer function: the
 * caller is not known yet, so it runs outside any withUserTx). Undefined for an unknown or revoked key.
 */
export async function apiKeyOwner(
  db: Db,
  key: string,
): Promise<{ userId: string; role: Role; apiKeyId: string; teamId: string | null } | undefined> {
  const { rows } = await db.query<{ user_id: string; role: Role; api_key_id: string; team_id: string | null }>(
    'SELECT user_id, role, api_key_id, team_id FROM auth_api_key($1)',
    [hashApiKey(key)],
  );
  const row = rows[0];
  return row && { userId: row.user_id, role: row.role, apiKeyId: row.api_key_id, teamId: row.team_id };
}
