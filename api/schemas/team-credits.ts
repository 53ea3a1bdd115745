import { z } from 'zod';
import { pageSchema } from './common';
import { transferSchema } from './credits';

// The schemas of a team's credit routes: /v1/teams/:id/credits, …/credits/transactions, …/usage.

const MEMBER_ID = '8f7e6d5c-4b3a-4291-8e0f-1a2b3c4d5e6f';
const AT = '2026-01-15T09:30:00.000Z';

export const teamBalanceSchema = z
  .object({
    available: z.number().int(),
    reserved: z.number().int(),
    spent: z.number().int(),
    granted: z.number().int(),
    expired: z.number().int(),
  })
  .meta({
    id: 'TeamCreditBalance',
    examples: [{ available: 4200, reserved: 90, spent: 690, granted: 5000, expired: 20 }],
  });

export const teamTransferSchema = transferSchema
  .extend({
    userId: z
      .uuid()
      .nullable()
      .describe('The member who acted; null for grants and expiries of lapsed grants'),
  })
  .meta({
    id: 'TeamCreditTransfer',
    examples: [
      {
        id: '7c1d2e3f-4a5b-8c6d-9e0f-1a2b3c4d5e6f',
        kind: 'reserve',
        amount: 45,
        userId: MEMBER_ID,
        generationId: '0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e',
        pendingId: null,
        reason: null,
        expiresAt: '2026-01-15T09:45:00.000Z',
        createdAt: AT,
      },
    ],
  });

export const teamTransferPage = pageSchema(teamTransferSchema);

export const usageQuery = z.object({
  month: z
    .string()
    .regex(/^[1-9]\d{3}-(0[1-9]|1[0-2])$/, { message: 'must be a month as YYYY-MM' })
    .optional()
    .describe('The calendar month (UTC), YYYY-MM; the current one when absent'),
});

export const usageSchema = z
  .object({
    month: z.string(),
    data: z.array(
      z.object({
        userId: z.uuid(),
        model: z.string().nullable().describe("The generations' model; null for a reservation without one"),
        count: z.number().int().describe('Reservations made in the month'),
        reserved: z.number().int().describe('Credits of those still open'),
        spent: z.number().int().describe('Credits of those committed'),
        refunded: z.number().int().describe('Credits of those released'),
      }),
    ),
  })
  .meta({
    id: 'TeamUsage',
    examples: [
      {
        month: '2026-01',
        data: [
          { userId: MEMBER_ID, model: 'imagen4-ultra', count: 12, reserved: 45, spent: 450, refunded: 45 },
        ],
      },
    ],
  });
