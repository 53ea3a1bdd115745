import { z } from 'zod';
import { GENERATION_STATUSES } from '../../lib/generations/status';
import type { GenerationView } from '../../lib/generations/view';
import { examples } from './examples';

export const generationSchema = z
  .object({
    id: z.uuid(),
    model: z.string(),
    status: z.enum(GENERATION_STATUSES),
    stage: z.string(),
    input: z.record(z.string(), z.unknown()),
    projectId: z.uuid().nullable(),
    credits: z.object({
      amount: z.number().int(),
      state: z.enum(['reserved', 'charged', 'refunded', 'none']),
    }),
    outputs: z.array(
      z.object({
        id: z.uuid(),
        url: z.string(),
        contentType: z.string(),
        bytes: z.number().int(),
        width: z.number().int().nullable(),
        height: z.number().int().nullable(),
        durationMs: z.number().int().nullable(),
        sha256: z.string(),
      }),
    ),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    completedAt: z.string().nullable(),
  })
  .meta({ id: 'Generation', examples: [examples.generation] }) satisfies z.ZodType<GenerationView>;
