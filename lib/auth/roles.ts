import { withSystemTx, type SystemDb } from '../db/pool';
import type { Role } from './jwt';

export interface RoleChange {
  userId: string;
  email: string;
  role: Role;
  previousRole: Role;
}

/**
 * Sets the role of the user with `email` (system path: `npm run admin -- promote|demote`). Returns
 * undefined when there is no such user. Takes effect on the user's next request, for API keys and
 * login tokens alike: the API reads the role from the database on every request.
 */
export async function setUserRole(db: SystemDb, email: string, role: Role): Promise<RoleChange | undefined> {
  return withSystemTx(db, async (tx) => {
    const { rows } = await tx.query<{ id: string; email: string; role: Role; previous_role: Role }>(
      `UPDATE users u SET role = $2
       FROM (SELECT id, role FROM users WHERE email = lower($1) FOR UPDATE) old
       WHERE u.id = old.id
       RETURNING u.id, u.email, u.role, old.role AS previous_role`,
      [email.trim(), role],
    );
    const row = rows[0];
    return row && { userId: row.id, email: row.email, role: row.role, previousRole: row.previous_role };
  });
}
