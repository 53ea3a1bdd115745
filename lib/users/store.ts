import type { Role } from '../auth/jwt';
import { withSystemTx, type Db, type SystemDb, type Tx } from '../db/pool';

// Accounts. Register, the password check and the role lookup run before the caller is known, so
// outside any withUserTx, through the definer functions of db/migrations/008_database_logins.sql
// (register_user, auth_password_params, auth_password_check) and 003_identity.sql (auth_user);
// the others run in a withUserTx of the user they read or change, except setUserRole, an operator's
// command (system path).

export interface UserRow {
  id: string;
  email: string;
  role: Role;
  created_at: Date;
}

/** A user as clients see it. */
export interface UserView {
  id: string;
  email: string;
  role: Role;
  createdAt: string;
}

export const toView = (u: UserRow): UserView => ({
  id: u.id,
  email: u.email,
  role: u.role,
  createdAt: u.created_at.toISOString(),
});

/** The user's row; needs the user's own withUserTx. */
export async function loadUser(tx: Tx, id: string): Promise<UserRow | undefined> {
  const { rows } = await tx.query<UserRow>('SELECT id, email, role, created_at FROM users WHERE id = $1', [
    id,
  ]);
  return rows[0];
}

/**
 * A new plain user (role `user`) with the sign-up credits the settings say (SIGNUP_CREDITS, written
 * at provisioning): its id, or undefined when the email is taken.
 */
export async function registerUser(db: Db, email: string, passwordHash: string): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string | null }>('SELECT register_user($1, $2) AS id', [
    email,
    passwordHash,
  ]);
  return rows[0]?.id ?? undefined;
}

/**
 * The parameters and salt of the password hash of `email` (a dummy for an unknown email), never the
 * hash itself: Node derives the candidate from them and passwordMatch compares it in the database.
 */
export async function passwordParams(
  db: Db,
  email: string,
): Promise<{ params: string; keyBytes: number } | undefined> {
  const { rows } = await db.query<{ params: string; key_bytes: number }>(
    'SELECT params, key_bytes FROM auth_password_params($1)',
    [email],
  );
  const row = rows[0];
  return row && { params: row.params, keyBytes: row.key_bytes };
}

/** The id of the user whose password hash is `candidate`; undefined when it does not match. */
export async function passwordMatch(db: Db, email: string, candidate: string): Promise<string | undefined> {
  const { rows } = await db.query<{ user_id: string }>('SELECT user_id FROM auth_password_check($1, $2)', [
    email,
    candidate,
  ]);
  return rows[0]?.user_id;
}

/** Replaces the user's password hash; acts for app.user_id only, and only with its current hash in hand. */
export async function rehashPassword(tx: Tx, current: string, upgraded: string): Promise<void> {
  await tx.query('SELECT auth_password_rehash($1, $2)', [current, upgraded]);
}

/**
 * The user a verified login token names, with the user's current role (the token's own claim is not
 * trusted for authorisation); undefined when the account is gone.
 */
export async function userRole(db: Db, userId: string): Promise<{ userId: string; role: Role } | undefined> {
  const { rows } = await db.query<{ user_id: string; role: Role }>({
    name: 'auth-user',
    text: 'SELECT user_id, role FROM auth_user($1)',
    values: [userId],
  });
  const row = rows[0];
  return row && { userId: row.user_id, role: row.role };
}

export interface RoleChange {
  userId: string;
  email: string;
  role: Role;
  previousRole: Role;
}

/**
 * Sets the role of the user with `email` (system path: `npm run admin -- promote|demote`). Returns
 * undefined when there is no such user. Takes effect on the user's next request, for API keys and
 * login tokens alike: the API caches roles only while the database's revocation feed tells it of
 * every change (the users_auth_changed trigger, db/migrations/013_read_path.sql).
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
