import { z } from 'zod';
import { createdApiKeyExample, examples } from './examples';
import { nameBody } from './common';

export const apiKeySchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    prefix: z.string().describe('The first characters of the key, to tell keys apart'),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable().describe('Updated at most once a minute'),
  })
  .meta({ id: 'ApiKey', examples: [examples.apiKey] });

export const createdApiKeySchema = apiKeySchema
  .extend({
    key: z
      .string()
      .nullable()
      .describe(
        'The key itself: shown this once, only its hash is stored. null when the answer is a replay ' +
          '(`Idempotency-Key`, `idempotent-secret-redacted: true`)',
      ),
  })
  .meta({ id: 'CreatedApiKey', examples: [createdApiKeyExample] });

export const createApiKeyBody = nameBody(examples.apiKeyRequest);
