import { z } from 'zod';

export const bannerSchema = z.object({ message: z.string(), status: z.string() });

export const livenessSchema = z.object({ status: z.literal('healthy'), version: z.string() });

export const readinessSchema = z.object({
  status: z.enum(['ready', 'unavailable']),
  checks: z.object({ postgres: z.enum(['ok', 'failed']), temporal: z.enum(['ok', 'failed']) }),
});
