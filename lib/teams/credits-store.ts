// Reading a team's credit account: who may, and what each member sees (lib/ledger/ledger.ts reads
// the balance and the lines; row-level security decides which lines).
import type { Tx } from '../db/pool';
import type { TeamRole } from './roles';

/** The role of the user the transaction is scoped to in the live team `teamId`, or null (not a member, no such team). */
export async function teamRoleOf(tx: Tx, teamId: string): Promise<TeamRole | null> {
  const { rows } = await tx.query<{ role: TeamRole | null }>('SELECT velro_team_role($1) AS role', [teamId]);
  return rows[0]?.role ?? null;
}
