import { z } from 'zod';
import { idParams } from './common';
import { examples } from './examples';

// PATCH/GET /v1/admin/accounts/:id/limits: an account's provider-capacity caps and priority.

const cap = (kind: string) =>
  z
    .int({ message: 'must be a whole number' })
    .min(1, { message: 'must be at least 1' })
    .max(10_000, { message: 'must be at most 10000' })
    .nullable()
    .optional()
    .describe(`Generations of kind ${kind} the account may have at providers at once; null: the default`);

/** A user's or a team's id. */
export const accountParams = idParams;

export const limitsBody = z
  .strictObject({
    maxConcurrentVideo: cap('video'),
    maxConcurrentImage: cap('image'),
    priority: z
      .int({ message: 'must be a whole number' })
      .min(1, { message: 'must be between 1 and 10' })
      .max(10, { message: 'must be between 1 and 10' })
      .nullable()
      .optional()
      .describe(
        "The account's weight in fair turns (1-10, default 5): with others waiting, its share of freed " +
          'slots is its priority over the sum of theirs, so even 1 is never starved; null: the default',
      ),
  })
  .meta({ examples: [examples.accountLimitsRequest] })
  .refine((b) => Object.keys(b).length > 0, {
    message: 'give at least one of maxConcurrentVideo, maxConcurrentImage, priority',
  });

const values = z.object({
  maxConcurrentVideo: z.int(),
  maxConcurrentImage: z.int(),
  priority: z.int(),
});

export const limitsSchema = values
  .extend({
    accountId: z.uuid(),
    accountKind: z.enum(['user', 'team']),
    overrides: z
      .object({
        maxConcurrentVideo: z.int().nullable(),
        maxConcurrentImage: z.int().nullable(),
        priority: z.int().nullable(),
      })
      .describe("The admin's overrides; null where the deployment's default applies"),
    updatedAt: z.string().nullable(),
  })
  .meta({ id: 'AccountLimits', examples: [examples.accountLimits] });
