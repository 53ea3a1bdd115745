import { z } from 'zod';
import { balanceSchema } from './credits';

// GET /v1/me.

export const meSchema = z.object({
  id: z.uuid(),
  email: z.string(),
  role: z.enum(['user', 'admin']),
  createdAt: z.string(),
  credits: balanceSchema,
});
