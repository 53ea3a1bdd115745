import { generateApiKey } from '../auth/api-keys';
import type { Role } from '../auth/jwt';
import { newestFirst, type PageAfter } from '../db/keyset';
import { atPerUserCap } from '../db/per-user-cap';
import type { Db, Tx } from '../db/pool';
import { asLedgerError } from '../ledger/errors';
import { requireTeamRole } from '../teams/store';

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
  const countActive =
    'SELECT count(*)::int AS n FROM api_keys WHERE user_id = current_app_user() AND team_id IS NULL AND revoked_at IS NULL';
  if (await atPerUserCap(tx, 'api-keys', userId, countActive, MAX_ACTIVE_API_KEYS)) return undefined;
  const { rows } = await tx.query<ApiKeyRow>(
    `INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
    [userId, name, key.prefix, key.hash],
  );
  return { row: rows[0]!, key: key.key };
}

// Row-level security also shows a team's admins the team's keys: the personal functions name the
// user's own personal keys explicitly.

/** One page of the user's active personal keys, newest first (`limit + 1` rows: see newestFirst). */
export function listActiveApiKeys(tx: Tx, page: { after?: PageAfter; limit: number }): Promise<ApiKeyRow[]> {
  return newestFirst<ApiKeyRow>(tx, {
    select: `SELECT ${COLUMNS} FROM api_keys`,
    cursorTable: 'api_keys',
    where: ['user_id = current_app_user()', 'team_id IS NULL', 'revoked_at IS NULL'],
    ...page,
  });
}

/** Whether an active personal key of the user with this id was there to revoke. */
export async function revokeApiKey(tx: Tx, id: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE api_keys SET revoked_at = now()
     WHERE id = $1 AND user_id = current_app_user() AND team_id IS NULL AND revoked_at IS NULL`,
    [id],
  );
  return rowCount !== 0;
}

/** Active keys a team may hold at once. */
export const MAX_ACTIVE_TEAM_API_KEYS = 100;

/** A team's key: it acts as its own bot user (a member of the team), made by one of its admins. */
export interface TeamApiKeyRow extends ApiKeyRow {
  team_id: string;
  created_by: string | null;
}

export interface TeamApiKeyView extends ApiKeyView {
  teamId: string;
  createdBy: string | null;
}

const TEAM_COLUMNS = `${COLUMNS}, team_id, created_by`;

export const toTeamView = (k: TeamApiKeyRow): TeamApiKeyView => ({
  ...toView(k),
  teamId: k.team_id,
  createdBy: k.created_by,
});

// The team functions need the caller (the withUserTx's user) to be an admin or the owner of the
// team; otherwise they throw requireTeamRole's LedgerError (not_found, or forbidden naming `admin`).

/**
 * A new key of the team (create_team_api_key: its bot user, a member with the role `member`, and the
 * key), and the key itself, known this once. `'limit_reached'` when the team already holds
 * MAX_ACTIVE_TEAM_API_KEYS active keys (counted under a lock per team, so concurrent creations queue).
 */
export async function createTeamApiKey(
  tx: Tx,
  teamId: string,
  name: string,
): Promise<{ row: TeamApiKeyRow; key: string } | 'limit_reached'> {
  await requireTeamRole(tx, teamId, 'admin');
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`team-api-keys:${teamId}`]);
  const { rows: count } = await tx.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM api_keys WHERE team_id = $1 AND revoked_at IS NULL',
    [teamId],
  );
  if (count[0]!.n >= MAX_ACTIVE_TEAM_API_KEYS) return 'limit_reached';
  const key = generateApiKey();
  const { rows: made } = await tx
    .query<{ id: string }>('SELECT create_team_api_key($1, $2, $3, $4) AS id', [
      teamId,
      name,
      key.prefix,
      key.hash,
    ])
    .catch((err: unknown) => {
      throw asLedgerError(err);
    });
  const { rows } = await tx.query<TeamApiKeyRow>(`SELECT ${TEAM_COLUMNS} FROM api_keys WHERE id = $1`, [
    made[0]!.id,
  ]);
  return { row: rows[0]!, key: key.key };
}

/** One page of the team's active keys, newest first (`limit + 1` rows: see newestFirst). */
export async function listTeamApiKeys(
  tx: Tx,
  teamId: string,
  page: { after?: PageAfter; limit: number },
): Promise<TeamApiKeyRow[]> {
  await requireTeamRole(tx, teamId, 'admin');
  return newestFirst<TeamApiKeyRow>(tx, {
    select: `SELECT ${TEAM_COLUMNS} FROM api_keys`,
    where: ['team_id = $1', 'revoked_at IS NULL'],
    params: [teamId],
    ...page,
  });
}

/**
 * Revokes a team key, and takes its bot user out of the team in the same transaction: the key is
 * refused from the next request on, and whatever still acts as the bot (an open event stream) loses
 * the team's rows at its next read, as any removed member does. Whether there was such a key.
 */
export async function revokeTeamApiKey(tx: Tx, teamId: string, keyId: string): Promise<boolean> {
  await requireTeamRole(tx, teamId, 'admin');
  const { rows } = await tx.query<{ user_id: string }>(
    `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND team_id = $2 AND revoked_at IS NULL
     RETURNING user_id`,
    [keyId, teamId],
  );
  if (!rows[0]) return false;
  await tx.query('DELETE FROM team_members WHERE team_id = $1 AND user_id = $2', [teamId, rows[0].user_id]);
  return true;
}

/**
 * Whose active key this is (by its hash: hashApiKey), with the user's current role (auth_api_key, a
 * definer function that only reads: the caller is not known yet, so it runs outside any withUserTx;
 * last use is recorded apart, by LastUsedBatcher). Undefined for an unknown or revoked key.
 */
export async function apiKeyOwner(
  db: Db,
  keyHash: Buffer,
): Promise<{ userId: string; role: Role; apiKeyId: string; teamId: string | null } | undefined> {
  const { rows } = await db.query<{
    user_id: string;
    role: Role;
    api_key_id: string;
    team_id: string | null;
  }>({
    name: 'auth-api-key',
    text: 'SELECT user_id, role, api_key_id, team_id FROM auth_api_key($1)',
    values: [keyHash],
  });
  const row = rows[0];
  return row && { userId: row.user_id, role: row.role, apiKeyId: row.api_key_id, teamId: row.team_id };
}
