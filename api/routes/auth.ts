import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  hashPassword,
  needsRehash,
  passwordProblem,
  PASSWORD_MAX_LENGTH,
  PASSWORD_MIN_LENGTH,
  passwordCandidate,
  warmUpPasswords,
} from '../../lib/auth/passwords';
import { withUserTx } from '../../lib/db/pool';
import {
  loadUser,
  passwordMatch,
  passwordParams,
  registerUser,
  rehashPassword,
  toView,
  type UserRow,
} from '../../lib/users/store';
import { ApiError } from '../errors';
import { ipKey } from '../plugins/security';
import { loginBody, registerBody, sessionSchema } from '../schemas/auth';
import { problemSchema } from '../schemas/common';

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
    return { token, tokenType: 'Bearer' as const, expiresAt: expiresAt.toISOString(), user: toView(user) };
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
      // The user does not exist yet, so there is no app.user_id: registerUser goes through a
      // definer function, and the new user is read back as itself.
      const id = await registerUser(app.db, email, await hashPassword(password));
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
      const found = await passwordParams(app.db, email);
      // Always one full scrypt, whether or not the account exists or has a password.
      const candidate = found ? await passwordCandidate(password, found.params, found.keyBytes) : undefined;
      const userId = candidate ? await passwordMatch(app.db, email, candidate) : undefined;
      if (!userId || !candidate) throw invalidCredentials();
      const user = await withUserTx(app.db, userId, (tx) => loadUser(tx, userId));
      if (!user) throw invalidCredentials();
      if (needsRehash(candidate)) {
        const upgraded = await hashPassword(password);
        await withUserTx(app.db, user.id, (tx) => rehashPassword(tx, candidate, upgraded));
      }
      return session(user);
    },
  );
};

export default auth;
