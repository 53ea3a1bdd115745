import { newestFirst, type PageAfter } from '../db/keyset';
import type { Tx } from '../db/pool';
import { LedgerError } from '../ledger/errors';
import { INVITATION_TTL_MS } from './invitation-tokens';
import { atLeast, type AssignableRole, type TeamRole } from './roles';
import { requireTeamRole } from './store';

/** Pending invitations a team may have at once: each may send an e-mail, to any address. */
export const MAX_PENDING_INVITATIONS = 100;

export type InvitationStatus = 'pending' | 'accepted' | 'revoked' | 'expired';

export interface InvitationRow {
  id: string;
  email: string;
  role: AssignableRole;
  invited_by: string;
  created_at: Date;
  expires_at: Date;
  status: InvitationStatus;
}

/** An invitation as its team's admins see it: never the token (nor its hash). */
export interface InvitationView {
  id: string;
  email: string;
  role: AssignableRole;
  invitedBy: string;
  createdAt: string;
  expiresAt: string;
  status: InvitationStatus;
}

// The status by the database's clock, as accept_team_invitation decides it.
const COLUMNS = `id, email, role, invited_by, created_at, expires_at,
  CASE WHEN accepted_at IS NOT NULL THEN 'accepted' WHEN revoked_at IS NOT NULL THEN 'revoked'
       WHEN expires_at <= now() THEN 'expired' ELSE 'pending' END AS status`;

export const toView = (i: InvitationRow): InvitationView => ({
  id: i.id,
  email: i.email,
  role: i.role,
  invitedBy: i.invited_by,
  createdAt: i.created_at.toISOString(),
  expiresAt: i.expires_at.toISOString(),
  status: i.status,
});

// Every function runs in a withUserTx of the caller; team refusals are LedgerErrors (not_found for
// an unknown team or an outsider, forbidden with the role needed), as the team functions raise them.

export interface NewInvitation {
  teamId: string;
  inviterId: string;
  /** Lower-cased (team_invitations and users keep emails so). */
  email: string;
  role: AssignableRole;
  tokenHash: Buffer;
}

export type CreateOutcome =
  | { kind: 'created'; row: InvitationRow; teamName: string; inviterEmail: string }
  | { kind: 'already_member' }
  | { kind: 'too_many' };

/**
 * A new pending invitation (admin+, for a role at most the inviter's), expiring in 7 days, with
 * what its e-mail names (the team, the inviter); `already_member` when the email is a member's,
 * `too_many` past MAX_PENDING_INVITATIONS (counted under a lock per team: concurrent ones queue).
 */
export async function createInvitation(tx: Tx, inv: NewInvitation): Promise<CreateOutcome> {
  const role = await requireTeamRole(tx, inv.teamId, 'admin');
  if (!atLeast(role, inv.role)) {
    throw new LedgerError('forbidden', `inviting as ${inv.role} needs the role ${inv.role}`, inv.role);
  }
  // Teammates see each other's users row (policy users_teammates), so a member's email is visible.
  const member = await tx.query(
    'SELECT 1 FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 AND u.email = $2',
    [inv.teamId, inv.email],
  );
  if (member.rowCount) return { kind: 'already_member' };
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`team-invitations:${inv.teamId}`]);
  const pending = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM team_invitations
     WHERE team_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()`,
    [inv.teamId],
  );
  if (pending.rows[0]!.n >= MAX_PENDING_INVITATIONS) return { kind: 'too_many' };
  const { rows } = await tx.query<InvitationRow>(
    // created_at to the millisecond, the precision of the list's cursors (so none is skipped).
    `INSERT INTO team_invitations (team_id, email, role, token_hash, invited_by, created_at, expires_at)
     SELECT $1, $2, $3, $4, $5, at, at + $6 * interval '1 millisecond'
     FROM date_trunc('milliseconds', now()) at
     RETURNING ${COLUMNS}`,
    [inv.teamId, inv.email, inv.role, inv.tokenHash, inv.inviterId, INVITATION_TTL_MS],
  );
  const names = await tx.query<{ team_name: string; inviter_email: string }>(
    'SELECT t.name AS team_name, u.email AS inviter_email FROM teams t, users u WHERE t.id = $1 AND u.id = $2',
    [inv.teamId, inv.inviterId],
  );
  const { team_name, inviter_email } = names.rows[0]!;
  return { kind: 'created', row: rows[0]!, teamName: team_name, inviterEmail: inviter_email };
}

/** One page of the team's invitations, newest first (admin+; `limit + 1` rows: see newestFirst). */
export async function listInvitations(
  tx: Tx,
  teamId: string,
  page: { after?: PageAfter; limit: number },
): Promise<InvitationRow[]> {
  await requireTeamRole(tx, teamId, 'admin');
  return newestFirst<InvitationRow>(tx, {
    select: `SELECT ${COLUMNS} FROM team_invitations`,
    where: ['team_id = $1'],
    params: [teamId],
    ...page,
  });
}

/**
 * Revokes a pending (or expired) invitation of the team (admin+): `revoked` also when it was
 * revoked before; `accepted` when it is used already; `not_found` when the team has no such one.
 */
export async function revokeInvitation(
  tx: Tx,
  teamId: string,
  id: string,
): Promise<'revoked' | 'accepted' | 'not_found'> {
  await requireTeamRole(tx, teamId, 'admin');
  const { rowCount } = await tx.query(
    `UPDATE team_invitations SET revoked_at = now()
     WHERE team_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL`,
    [teamId, id],
  );
  if (rowCount) return 'revoked';
  const { rows } = await tx.query<{ accepted: boolean }>(
    'SELECT accepted_at IS NOT NULL AS accepted FROM team_invitations WHERE team_id = $1 AND id = $2',
    [teamId, id],
  );
  if (!rows[0]) return 'not_found';
  return rows[0].accepted ? 'accepted' : 'revoked';
}

export type AcceptOutcome = 'joined' | 'already_joined' | 'not_found' | 'expired' | 'revoked' | 'used';

/**
 * Accepts the invitation whose token hashes to `tokenHash` for the caller, whose email must be the
 * invited one (accept_team_invitation): the team and role for `joined` and `already_joined`.
 */
export async function acceptInvitation(
  tx: Tx,
  tokenHash: Buffer,
): Promise<{ outcome: AcceptOutcome; teamId: string | null; role: TeamRole | null }> {
  const { rows } = await tx.query<{ outcome: AcceptOutcome; team_id: string | null; role: TeamRole | null }>(
    'SELECT outcome, team_id, role FROM accept_team_invitation($1)',
    [tokenHash],
  );
  const r = rows[0]!;
  return { outcome: r.outcome, teamId: r.team_id, role: r.role };
}
