import { z } from 'zod';
import { createdApiKeyExample, examples } from './examples';
import { idParams, nameBody } from './common';

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

// Team API keys (routes/team-api-keys.ts).

const teamKeyExample = {
  ...examples.apiKey,
  teamId: '4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a',
  createdBy: '9b2e4c6a-1f3d-4a5b-8c7d-0e1f2a3b4c5d',
};

export const teamApiKeySchema = apiKeySchema
  .extend({
    teamId: z.uuid(),
    createdBy: z.uuid().nullable().describe('The admin who created it'),
  })
  .meta({ id: 'TeamApiKey', examples: [teamKeyExample] });

export const createdTeamApiKeySchema = z
  .object({
    apiKey: teamApiKeySchema,
    key: createdApiKeySchema.shape.key,
  })
  .meta({ id: 'CreatedTeamApiKey', examples: [{ apiKey: teamKeyExample, key: createdApiKeyExample.key }] });

export const teamApiKeyParams = idParams.extend({ keyId: idParams.shape.id });
