import { newestFirst, type PageAfter } from '../db/keyset';
import type { Tx } from '../db/pool';
import { asLedgerError } from '../ledger/errors';
import type { AssignableRole, TeamRole } from './roles';

// Teams and their members. Every function runs in a withUserTx of the caller (with its request id
// and key, for the audit trail): row-level security and the definer functions of
// db/migrations/009_teams.sql decide what it may see and change, and their refusals arrive as
// LedgerErrors (asLedgerError): not_found (no such team for the caller; detail `member` for a
// member), forbidden (detail: the role needed), team_rule (detail: the rule's code).

export interface TeamRow {
  id: string;
  name: string;
  /** The caller's role in it. */
  role: TeamRole;
  created_at: Date;
  updated_at: Date;
}

export interface MemberRow {
  /** The member's user id (`id`, so that lists page by it). */
  id: string;
  email: string;
  role: TeamRole;
  monthly_spend_limit: number | null;
  created_at: Date;
}

async function refusing<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw asLedgerError(err);
  }
}

/** The caller's role in the live team, if it is `needed` or higher; else not_found or forbidden. */
export async function requireTeamRole(tx: Tx, teamId: string, needed: TeamRole): Promise<TeamRole> {
  return refusing(async () => {
    const { rows } = await tx.query<{ role: TeamRole }>('SELECT velro_require_team_role($1, $2) AS role', [
      teamId,
      needed,
    ]);
    return rows[0]!.role;
  });
}

// Lists page on created_at cut to the millisecond, the precision of the API's cursors: rows made in
// one millisecond (or one transaction) never straddle a page boundary unseen.
const TEAM_SELECT = `SELECT t.id, t.name, m.role, date_trunc('milliseconds', t.created_at) AS created_at, t.updated_at
  FROM teams t JOIN team_members m ON m.team_id = t.id AND m.user_id = current_app_user()`;

/** A new team with the caller as its owner (and its credit account). */
export async function createTeam(tx: Tx, name: string): Promise<TeamRow> {
  const id = await refusing(async () => {
    const { rows } = await tx.query<{ id: string }>('SELECT create_team($1) AS id', [name]);
    return rows[0]!.id;
  });
  return (await getTeam(tx, id))!;
}

/** One page of the caller's live teams, newest first (`limit + 1` rows: see newestFirst). */
export function listTeams(tx: Tx, page: { after?: PageAfter; limit: number }): Promise<TeamRow[]> {
  return newestFirst<TeamRow>(tx, {
    select: `SELECT * FROM (${TEAM_SELECT} WHERE t.deleted_at IS NULL) x`,
    alias: 'x',
    ...page,
  });
}

/** The team, if the caller is a member of it and it is live. */
export async function getTeam(tx: Tx, id: string): Promise<TeamRow | undefined> {
  const { rows } = await tx.query<TeamRow>(`${TEAM_SELECT} WHERE t.id = $1 AND t.deleted_at IS NULL`, [id]);
  return rows[0];
}

/** Renames the team (admin+). */
export async function renameTeam(tx: Tx, id: string, name: string): Promise<TeamRow> {
  await requireTeamRole(tx, id, 'admin');
  await tx.query('UPDATE teams SET name = $2, updated_at = now() WHERE id = $1', [id, name]);
  return (await getTeam(tx, id))!;
}

/** Deletes the team (owner only); refused while it holds credits or has generations in flight. */
export async function deleteTeam(tx: Tx, id: string): Promise<void> {
  await refusing(() => tx.query('SELECT delete_team($1)', [id]));
}

// Members are people: a team key's bot user (users.kind = 'team_key') is managed as its key.
const MEMBER_SELECT = `SELECT * FROM (
  SELECT m.user_id AS id, u.email, m.role, m.monthly_spend_limit, date_trunc('milliseconds', m.created_at) AS created_at
  FROM team_members m JOIN users u ON u.id = m.user_id
  WHERE m.team_id = $1 AND u.kind = 'person') x`;

/** One page of the team's members, newest first (any member may read them). */
export async function listMembers(
  tx: Tx,
  teamId: string,
  page: { after?: PageAfter; limit: number },
): Promise<MemberRow[]> {
  await requireTeamRole(tx, teamId, 'viewer');
  return newestFirst<MemberRow>(tx, { select: MEMBER_SELECT, alias: 'x', params: [teamId], ...page });
}

export async function getMember(tx: Tx, teamId: string, userId: string): Promise<MemberRow | undefined> {
  const { rows } = await tx.query<MemberRow>(`${MEMBER_SELECT} WHERE x.id = $2`, [teamId, userId]);
  return rows[0];
}

export interface MemberChange {
  role?: AssignableRole;
  /** null: no limit. */
  monthlySpendLimit?: number | null;
}

/**
 * Changes a member's role and/or monthly spend limit (admin+); undefined when there is no such
 * member. The database's guard refuses a member above the caller's rank or a role above it
 * (forbidden) and the owner's role (team_rule owner_required).
 */
export async function updateMember(
  tx: Tx,
  teamId: string,
  userId: string,
  change: MemberChange,
): Promise<MemberRow | undefined> {
  await requireTeamRole(tx, teamId, 'admin');
  const sets: string[] = [];
  const params: unknown[] = [teamId, userId];
  if (change.role !== undefined) {
    params.push(change.role);
    sets.push(`role = $${params.length}`);
  }
  if (change.monthlySpendLimit !== undefined) {
    params.push(change.monthlySpendLimit);
    sets.push(`monthly_spend_limit = $${params.length}`);
  }
  if (!sets.length) return getMember(tx, teamId, userId);
  const { rowCount } = await refusing(() =>
    tx.query(
      `UPDATE team_members m SET ${sets.join(', ')}, updated_at = now()
       FROM users u WHERE u.id = m.user_id AND u.kind = 'person' AND m.team_id = $1 AND m.user_id = $2`,
      params,
    ),
  );
  return rowCount ? getMember(tx, teamId, userId) : undefined;
}

/**
 * Removes a member: the caller itself (any member; never the owner: team_rule owner_cannot_leave),
 * or another (admin+). Whether there was such a member.
 */
export async function removeMember(
  tx: Tx,
  teamId: string,
  userId: string,
  callerId: string,
): Promise<boolean> {
  await requireTeamRole(tx, teamId, userId === callerId ? 'viewer' : 'admin');
  const { rowCount } = await refusing(() =>
    tx.query(
      `DELETE FROM team_members m USING users u
       WHERE u.id = m.user_id AND u.kind = 'person' AND m.team_id = $1 AND m.user_id = $2`,
      [teamId, userId],
    ),
  );
  return rowCount !== 0;
}

/** Hands the owner role to another member (owner only); the caller becomes an admin. */
export async function transferOwnership(tx: Tx, teamId: string, userId: string): Promise<TeamRow> {
  await refusing(() => tx.query('SELECT transfer_team_ownership($1, $2)', [teamId, userId]));
  return (await getTeam(tx, teamId))!;
}
