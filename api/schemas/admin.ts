import { z } from 'zod';
import { examples } from './examples';

// The admin routes' schemas: POST /v1/admin/credit-grants (to a user or to a team).

export const grantBody = z
  .strictObject({
    id: z
      .uuid({ message: 'must be a UUID' })
      .optional()
      .describe(
        'Transfer id chosen by the client: a retry with the same id and fields returns the first grant',
      ),
    userId: z.uuid({ message: 'must be a UUID' }).optional().describe('The user to grant to (or teamId)'),
    teamId: z
      .uuid({ message: 'must be a UUID' })
      .optional()
      .describe("The team to grant to, into the team's account (or userId)"),
    credits: z.number().int().min(1).max(1_000_000_000),
    reason: z.string().trim().min(1).max(500),
    expiresAt: z.iso
      .datetime({ offset: true, message: 'must be an ISO 8601 date-time' })
      .refine((v) => Date.parse(v) > Date.now(), { message: 'must be in the future' })
      .optional()
      .describe('When the unspent part of this grant expires; never when absent'),
  })
  .superRefine((b, ctx) => {
    // Exactly one owner: named at the field a client most likely meant to send.
    if ((b.userId === undefined) === (b.teamId === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [b.teamId === undefined ? 'userId' : 'teamId'],
        message: 'give exactly one of userId and teamId',
      });
  })
  .meta({ examples: [examples.grantRequest] });

export const grantSchema = z
  .object({
    id: z.uuid(),
    kind: z.literal('grant'),
    userId: z.uuid().nullable().describe('The user granted to; null for a team grant'),
    teamId: z.uuid().nullable().describe('The team granted to; null for a user grant'),
    amount: z.number().int(),
    reason: z.string().nullable(),
    expiresAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: 'CreditGrant', examples: [examples.grant] });
