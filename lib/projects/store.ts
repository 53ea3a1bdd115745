import { newestFirst, type PageAfter } from '../db/keyset';
import { atPerUserCap } from '../db/per-user-cap';
import type { Tx } from '../db/pool';

/** Projects a user (personal ones) or a team may hold at once. */
export const MAX_PROJECTS = 1000;

export interface ProjectRow {
  id: string;
  name: string;
  /** The team it belongs to; null for a personal project. */
  team_id: string | null;
  /** Who made it (for a team project: the member whose own work it is). */
  user_id: string;
  created_at: Date;
  updated_at: Date;
}

/** A project as clients see it. */
export interface ProjectView {
  id: string;
  name: string;
  teamId: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

const COLUMNS = 'id, name, team_id, user_id, created_at, updated_at';

export const toView = (p: ProjectRow): ProjectView => ({
  id: p.id,
  name: p.name,
  teamId: p.team_id,
  createdBy: p.user_id,
  createdAt: p.created_at.toISOString(),
  updatedAt: p.updated_at.toISOString(),
});

// Every function runs in a withUserTx: row-level security scopes it to the caller's projects and
// those of its teams (to members; db/migrations/009_teams.sql), and decides who may write them.

/**
 * The new project, the user's own or (with `teamId`, the caller a member or higher: checked by its
 * caller and by row-level security) the team's; undefined when the user, or the team, already
 * holds MAX_PROJECTS.
 */
export async function createProject(
  tx: Tx,
  userId: string,
  name: string,
  teamId: string | null = null,
): Promise<ProjectRow | undefined> {
  const atCap = teamId
    ? await teamAtCap(tx, teamId)
    : await atPerUserCap(
        tx,
        'projects',
        userId,
        'SELECT count(*)::int AS n FROM projects WHERE team_id IS NULL',
        MAX_PROJECTS,
      );
  if (atCap) return undefined;
  const { rows } = await tx.query<ProjectRow>(
    `INSERT INTO projects (user_id, name, team_id) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
    [userId, name, teamId],
  );
  return rows[0]!;
}

/** As atPerUserCap, for the team: its members' concurrent creations queue on one lock. */
async function teamAtCap(tx: Tx, teamId: string): Promise<boolean> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`team-projects:${teamId}`]);
  const { rows } = await tx.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM projects WHERE team_id = $1',
    [teamId],
  );
  return rows[0]!.n >= MAX_PROJECTS;
}

/** Whose projects a list shows: a user's personal ones, or a team's (the caller a member). */
export type ProjectOwner = { userId: string; teamId?: undefined } | { teamId: string; userId?: undefined };

/** One page of the owner's projects, newest first (`limit + 1` rows: see newestFirst). */
export function listProjects(
  tx: Tx,
  owner: ProjectOwner,
  page: { after?: PageAfter; limit: number },
): Promise<ProjectRow[]> {
  // Row-level security shows a user its teams' projects too: a list names whose it is.
  const where = owner.teamId ? ['team_id = $1'] : ['user_id = $1', 'team_id IS NULL'];
  return newestFirst<ProjectRow>(tx, {
    select: `SELECT ${COLUMNS} FROM projects`,
    where,
    cursorTable: 'projects',
    params: [owner.teamId ?? owner.userId],
    ...page,
  });
}

export async function getProject(tx: Tx, id: string): Promise<ProjectRow | undefined> {
  const { rows } = await tx.query<ProjectRow>(`SELECT ${COLUMNS} FROM projects WHERE id = $1`, [id]);
  return rows[0];
}

/** The renamed project; undefined when there is none with this id the user may change. */
export async function renameProject(tx: Tx, id: string, name: string): Promise<ProjectRow | undefined> {
  const { rows } = await tx.query<ProjectRow>(
    `UPDATE projects SET name = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, name],
  );
  return rows[0];
}

/** Whether there was a project with this id the user may delete. Its generations stay (their project_id becomes null). */
export async function deleteProject(tx: Tx, id: string): Promise<boolean> {
  const { rowCount } = await tx.query('DELETE FROM projects WHERE id = $1', [id]);
  return rowCount !== 0;
}
