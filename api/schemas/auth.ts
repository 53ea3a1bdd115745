import { z } from 'zod';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../lib/auth/passwords';
import { examples, sessionExample } from './examples';

export const userSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    role: z.enum(['user', 'admin']),
    createdAt: z.string(),
  })
  .meta({ id: 'User', examples: [examples.user] });

export const sessionSchema = z
  .object({
    token: z.string().describe('A login token (JWT): send it as `Authorization: Bearer <token>`'),
    tokenType: z.literal('Bearer'),
    expiresAt: z.string().describe('When the token stops working; log in again for a new one'),
    user: userSchema,
  })
  .meta({ id: 'Session', examples: [sessionExample] });

/** Trimmed and lower-cased before it is checked, so `Ann@Example.com ` and `ann@example.com` are one account. */
export const email = z
  .string()
  .trim()
  .toLowerCase()
  .max(254, { message: 'must be at most 254 characters' })
  .pipe(z.email({ message: 'must be an email address' }))
  // What the pipe checks (after the trim), as the document says it: zod's email pattern.
  .meta({ format: 'email', maxLength: 254, pattern: z.regexes.email.source });

export const registerBody = z
  .strictObject({
    email,
    password: z
      .string()
      .meta({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH })
      .describe(`${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`),
  })
  .meta({ examples: [examples.credentials] });

export const loginBody = z
  .strictObject({
    email,
    password: z.string().min(1).max(1024),
  })
  .meta({ examples: [examples.credentials] });
