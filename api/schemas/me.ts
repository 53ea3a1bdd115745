import { z } from 'zod';
import { balanceSchema } from './credits';

// GET /v1/me.

export const meSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  role: z.enum(['user', 'admin']),
  createdAt: z.string(),
  credits: balanceSchema.describe("The caller's credit; for a team API key, its team's"),
  kind: z
    .enum(['person', 'team_key'])
    .describe('`team_key`: the caller is a team API key (it acts as its own user, a member of its team)'),
  teamId: z.uuid().nullable().describe("A team API key's team; null for people"),
});
