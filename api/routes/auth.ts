import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { examples, sessionExample } from '../schemas/examples';
import type { Role } from '../../lib/auth/jwt';
import {
  hashPassword,
  needsRehash,
  passwordProblem,
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
  verifyPassword,
  warmUpPasswords,
} from '../../lib/auth/passwords';
import { withSystemTx, withUserTx, type Tx } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { ApiError } from '../errors';
import { ipKey } from '../plugins/security';
import { problemSchema } from '../schemas/common';

export const userSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    role: z.enum(['user', 'admin']),
    createdAt: z.string(),
  })
  .meta({ id: 'User', examples: [examples.user] });

const sessionSchema = z
  .object({
    token: z.string().describe('A login token (JWT): send it as `Authorization: Bearer <token>`'),
    tokenType: z.literal('Bearer'),
    expiresAt: z.string().describe('When the token stops working; log in again for a new one'),
    user: userSchema,
  })
  .meta({ id: 'Session', examples: [sessionExample] });

/** Trimmed and lower-cased before it is checked, so `Ann@Example.com ` and `ann@example.com` are one account. */
const email = z
  .string()
  .trim()
  .toLowerCase()
  .max(254, { message: 'must be at most 254 characters' })
  .pipe(z.email({ message: 'must be an email address' }))
  .meta({ format: 'email', maxLength: 254 });

const registerBody = z
  .strictObject({
    email,
    password: z
      .string()
      .meta({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH })
      .describe(`${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`),
  })
  .meta({ examples: [examples.credentials] });

const loginBody = z
  .strictObject({
    email,
    password: z.string().min(1).max(1024),
  })
  .meta({ examples: [examples.credentials] });

interface UserRow {
  id: string;
  email: string;
  role: Role;
  created_at: Date;
}

const toUser = (u: UserRow) => ({
  id: u.id,
  email: u.email,
  role: u.role,
  createdAt: u.created_at.toISOString(),
});

const loadUser = (tx: Tx, id: string) =>
  tx
    .query<UserRow>('SELECT id, email, role, created_at FROM users WHERE id = $1', [id])
    .then((r) => r.rows[0]);

const invalidCredentials = () =>
  new ApiError(401, 'invalid_credentials', 'Wrong email or password.', {
    headers: { 'www-authenticate': 'Bearer realm="velro"' },
  });

const auth: FastifyPluginAsyncZod = async (app) => {
  warmUpPasswords();
  // Stricter than the global limit, per client address, each route on its own.
  const rateLimit = {
    max: app.config.RATE_LIMIT_AUTH_MAX,
    timeWindow: app.config.RATE_LIMIT_WINDOW_SECONDS * 1000,
    keyGenerator: ipKey,
  };

  const session = (user: UserRow) => {
    const { token, expiresAt } = app.issueToken(user);
    return { token, tokenType: 'Bearer' as const, expiresAt: expiresAt.toISOString(), user: toUser(user) };
  };

  app.post(
    '/v1/auth/register',
    {
      config: { public: true, rateLimit },
      schema: {
        tags: ['account'],
        summary: 'Create an account',
        description:
          'Creates a user with the role `user` and answers with a login token. Emails are case-insensitive. ' +
          `Passwords: ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters (400 \`weak_password\` otherwise). ` +
          'A taken email answers 409 `email_taken`.',
        security: [],
        body: registerBody,
        response: {
          201: sessionSchema,
          400: problemSchema,
          409: problemSchema,
          413: problemSchema,
          429: problemSchema,
          500: problemSchema,
        },
      },
    },
    async (req, reply) => {
      const { email, password } = req.body;
      const problem = passwordProblem(password, email);
      if (problem) {
        throw new ApiError(400, 'weak_password', `body.password: ${problem}`, {
          errors: [{ path: 'body.password', message: problem }],
        });
      }
      const passwordHash = await hashPassword(password);
      const signupCredits = app.config.SIGNUP_CREDITS;
      // A system path: the user does not exist yet, so there is no app.user_id to scope to.
      const user = await withSystemTx(app.db, async (tx) => {
        const { rows } = await tx.query<{ id: string | null }>('SELECT create_user($1, $2) AS id', [
          email,
          passwordHash,
        ]);
        const id = rows[0]?.id;
        if (!id) return undefined;
        if (signupCredits > 0) {
          await ledger.grant(tx, {
            id: randomUUID(),
            userId: id,
            amount: signupCredits,
            reason: 'sign-up credits',
          });
        }
        return loadUser(tx, id);
      });
      if (!user) throw new ApiError(409, 'email_taken', 'An account with this email already exists.');
      req.log.info({ userId: user.id }, 'account created');
      return reply.status(201).send(session(user));
    },
  );

  app.post(
    '/v1/auth/login',
    {
      config: { public: true, rateLimit },
      schema: {
        tags: ['account'],
        summary: 'Log in',
        description:
          `Answers with a login token valid for ${app.config.JWT_TTL_SECONDS} seconds. ` +
          'An unknown email and a wrong password get the same 401 `invalid_credentials`.',
        security: [],
        body: loginBody,
        response: {
          200: sessionSchema,
          400: problemSchema,
          401: problemSchema,
          429: problemSchema,
          500: problemSchema,
        },
      },
    },
    async (req) => {
      const { email, password } = req.body;
      const { rows } = await app.db.query<{ id: string; password_hash: string | null }>(
        'SELECT id, password_hash FROM find_user_by_email($1)',
        [email],
      );
      const found = rows[0];
      // Always one full scrypt, whether or not the account exists or has a password.
      const ok = await verifyPassword(password, found?.password_hash);
      if (!ok || !found?.password_hash) throw invalidCredentials();
      const stored = found.password_hash;
      const user = await withUserTx(app.db, found.id, (tx) => loadUser(tx, found.id));
      if (!user) throw invalidCredentials();
      if (needsRehash(stored)) {
        const upgraded = await hashPassword(password);
        await withSystemTx(app.db, (tx) =>
          tx.query('UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3', [
            user.id,
            upgraded,
            stored,
          ]),
        );
      }
      return session(user);
    },
  );
};

export default auth;
