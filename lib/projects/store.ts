import { newestFirst, type PageAfter } from '../db/keyset';
import { atPerUserCap } from '../db/per-user-cap';
import type { Tx } from '../db/pool';

/** Projects a user may hold at once. */
export const MAX_PROJECTS = 1000;

export interface ProjectRow {
  id: string;
  name: string;
  created_at: Date;
  updated_at: Date;
}

/** A project as clients see it. */
export interface ProjectView {
  id: string;
  name: string;
  createdAt: string;
  updatedAt: string;
}

const COLUMNS = 'id, name, created_at, updated_at';

export const toView = (p: ProjectRow): ProjectView => ({
  id: p.id,
  name: p.name,
  createdAt: p.created_at.toISOString(),
  updatedAt: p.updated_at.toISOString(),
});

// Every function runs in a withUserTx: row-level security scopes it to the caller's projects.

/** The new project; undefined when the user already holds MAX_PROJECTS. */
export async function createProject(tx: Tx, userId: string, name: string): Promise<ProjectRow | undefined> {
  if (await atPerUserCap(tx, 'projects', userId, 'SELECT count(*)::int AS n FROM projects', MAX_PROJECTS)) {
    return undefined;
  }
  const { rows } = await tx.query<ProjectRow>(
    `INSERT INTO projects (user_id, name) VALUES ($1, $2) RETURNING ${COLUMNS}`,
    [userId, name],
  );
  return rows[0]!;
}

/** One page of the user's projects, newest first (`limit + 1` rows: see newestFirst). */
export function listProjects(tx: Tx, page: { after?: PageAfter; limit: number }): Promise<ProjectRow[]> {
  return newestFirst<ProjectRow>(tx, { select: `SELECT ${COLUMNS} FROM projects`, ...page });
}

export async function getProject(tx: Tx, id: string): Promise<ProjectRow | undefined> {
  const { rows } = await tx.query<ProjectRow>(`SELECT ${COLUMNS} FROM projects WHERE id = $1`, [id]);
  return rows[0];
}

/** The renamed project; undefined when there is none with this id. */
export async function renameProject(tx: Tx, id: string, name: string): Promise<ProjectRow | undefined> {
  const { rows } = await tx.query<ProjectRow>(
    `UPDATE projects SET name = $2, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, name],
  );
  return rows[0];
}

/** Whether there was a project with this id. Its generations stay (their project_id becomes null). */
export async function deleteProject(tx: Tx, id: string): Promise<boolean> {
  const { rowCount } = await tx.query('DELETE FROM projects WHERE id = $1', [id]);
  return rowCount !== 0;
}
