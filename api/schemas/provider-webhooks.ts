import { z } from 'zod';

// POST /v1/provider-webhooks/:provider.

export const providerParams = z.object({ provider: z.string().max(40) });

export const receivedSchema = z.object({ received: z.literal(true) });
