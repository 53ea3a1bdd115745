import { createHash, randomUUID } from 'node:crypto';
import { withSystemTx, withUserTx, type Db } from '../../lib/db/pool';
import type { TeamRole } from '../../lib/teams/roles';
import { systemDb } from './context';

// Teams made the way production makes them, at SQL level (fast): create_team() for the owner, an
// invitation accepted for each member, ledger_grant_team() for credit.

export async function createTeam(db: Db, ownerId: string, name = 'team'): Promise<string> {
  return withUserTx(db, ownerId, async (tx) => {
    const { rows } = await tx.query<{ id: string }>('SELECT create_team($1) AS id', [name]);
    return rows[0]!.id;
  });
}

/** Adds `user` with `role` (not owner): invited by `inviterId` (an admin or the owner), accepted. */
export async function addMember(
  db: Db,
  teamId: string,
  inviterId: string,
  user: { userId: string; email: string },
  role: Exclude<TeamRole, 'owner'>,
): Promise<void> {
  const hash = createHash('sha256').update(randomUUID()).digest();
  await withUserTx(db, inviterId, (tx) =>
    tx.query(
      `INSERT INTO team_invitations (team_id, email, role, token_hash, invited_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, now() + interval '7 days')`,
      [teamId, user.email, role, hash, inviterId],
    ),
  );
  const { rows } = await withUserTx(db, user.userId, (tx) =>
    tx.query<{ outcome: string }>('SELECT outcome FROM accept_team_invitation($1)', [hash]),
  );
  if (rows[0]?.outcome !== 'joined') throw new Error(`could not add member: ${rows[0]?.outcome}`);
}

export async function grantTeam(teamId: string, amount: number): Promise<void> {
  await withSystemTx(systemDb(), (tx) =>
    tx.query('SELECT ledger_grant_team($1, $2, $3, $4)', [randomUUID(), teamId, amount, 'test credits']),
  );
}

/** Removes a member behind the API's back (as an operator would): its access must end at once. */
export async function removeMember(teamId: string, userId: string): Promise<void> {
  await withSystemTx(systemDb(), (tx) =>
    tx.query('DELETE FROM team_members WHERE team_id = $1 AND user_id = $2', [teamId, userId]),
  );
}
