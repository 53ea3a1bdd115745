import { z } from 'zod';
import { pageSchema } from './common';
import { examples } from './examples';

// The credit routes' schemas: /v1/credits, /v1/credits/transactions (and the balance in /v1/me).

export const balanceSchema = z
  .object({
    available: z.number().int(),
    reserved: z.number().int(),
    spent: z.number().int(),
  })
  .meta({ id: 'CreditBalance', examples: [examples.balance] });

export const transferSchema = z
  .object({
    id: z.uuid(),
    kind: z.enum(['grant', 'reserve', 'commit', 'release', 'expire']),
    amount: z.number().int(),
    generationId: z.uuid().nullable(),
    pendingId: z.uuid().nullable(),
    reason: z.string().nullable(),
    expiresAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: 'CreditTransfer', examples: [examples.transfer] });

export const transferPage = pageSchema(transferSchema);
