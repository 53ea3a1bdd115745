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
  passwordCandidate,
  warmUpPasswords,
} from '../../lib/auth/passwords';
import { withUserTx, type Tx } from '../../lib/db/pool';
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
  // What the pipe checks (after the trim), as the document says it: zod's email pattern.
  .meta({ format: 'email', maxLength: 254, pattern: z.regexes.email.source });

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
      // The user does not exist yet, so there is no app.user_id: register_user makes a plain user
      // and grants the sign-up credits the settings say (SIGNUP_CREDITS, written at provisioning).
      const { rows } = await app.db.query<{ id: string | null }>('SELECT register_user($1, $2) AS id', [
        email,
        passwordHash,
      ]);
      const id = rows[0]?.id;
      const user = id ? await withUserTx(app.db, id, (tx) => loadUser(tx, id)) : undefined;
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
      // The database never hands out a hash: only its parameters and salt (a dummy for an unknown
      // email), so Node derives the candidate and the database compares it.
      const { rows } = await app.db.query<{ params: string; key_bytes: number }>(
        'SELECT params, key_bytes FROM auth_password_params($1)',
        [email],
      );
      const found = rows[0];
      // Always one full scrypt, whether or not the account exists or has a password.
      const candidate = found ? await passwordCandidate(password, found.params, found.key_bytes) : undefined;
      const match = candidate
        ? (
            await app.db.query<{ user_id: string }>('SELECT user_id FROM auth_password_check($1, $2)', [
              email,
              candidate,
            ])
          ).rows[0]
        : undefined;
      if (!match || !candidate) throw invalidCredentials();
      const user = await withUserTx(app.db, match.user_id, (tx) => loadUser(tx, match.user_id));
      if (!user) throw invalidCredentials();
      if (needsRehash(candidate)) {
        const upgraded = await hashPassword(password);
        // Acts for app.user_id only, and only with the current hash in hand.
        await withUserTx(app.db, user.id, (tx) =>
          tx.query('SELECT auth_password_rehash($1, $2)', [candidate, upgraded]),
        );
      }
      return session(user);
    },
  );
};

export default auth;
