import type { Tx } from '../db/pool';

/**
 * Which of these teams the user (the withUserTx's) is still a member of, in one statement: by
 * velro_team_role, the helper every policy reads, so the answer is the one row-level security gives.
 */
export async function teamsStillIn(tx: Tx, teamIds: string[]): Promise<Set<string>> {
  const { rows } = await tx.query<{ id: string }>(
    'SELECT t AS id FROM unnest($1::uuid[]) t WHERE velro_team_role(t) IS NOT NULL',
    [teamIds],
  );
  return new Set(rows.map((r) => r.id));
}
