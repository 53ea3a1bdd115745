// Example values for the OpenAPI document: one realistic instance per schema.
const GEN_ID = '3f6c2a1e-8d4b-4f7a-9c2e-5b1d0e7f9a21';
const USER_ID = '9b2e4c6a-1f3d-4a5b-8c7d-0e1f2a3b4c5d';
const AT = '2026-11-25T12:00:00.000Z';

export const examples = {
  problem: {
    type: 'urn:velro:error:insufficient_credits',
    title: 'Payment Required',
    status: 402,
    detail: 'flux-pro-v1.1-ultra costs 50 credits. insufficient credits: 20 available, 50 needed',
    code: 'insufficient_credits',
    requestId: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0',
  },
  submit: { model: 'flux-pro-v1.1-ultra', input: { prompt: 'a lighthouse at dusk', aspect_ratio: '1:1' } },
  generation: {
    id: GEN_ID,
    model: 'flux-pro-v1.1-ultra',
    status: 'succeeded',
    stage: 'done',
    input: {
      prompt: 'a lighthouse at dusk',
      aspect_ratio: '1:1',
      output_format: 'png',
      raw: false,
      safety_tolerance: '2',
    },
    projectId: null,
    teamId: null,
    createdBy: USER_ID,
    credits: { amount: 50, state: 'charged' },
    outputs: [
      {
        id: '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d',
        url: `https://api.velro.example/v1/assets/6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d?expires=1764158400&signature=Yx1…`,
        contentType: 'image/png',
        bytes: 183214,
        width: 1024,
        height: 1024,
        durationMs: null,
        sha256: 'b1946ac92492d2347c6235b4d2611184b1946ac92492d2347c6235b4d2611184',
      },
    ],
    inputs: [],
    error: null,
    createdAt: AT,
    updatedAt: '2026-11-25T12:00:03.120Z',
    completedAt: '2026-11-25T12:00:03.120Z',
  },
  balance: { available: 950, reserved: 0, spent: 50 },
  transfer: {
    id: '7c1d2e3f-4a5b-8c6d-9e0f-1a2b3c4d5e6f',
    kind: 'commit',
    amount: 50,
    generationId: GEN_ID,
    pendingId: '5e4d3c2b-1a09-8f7e-9d5c-4b3a29180f7e',
    reason: null,
    expiresAt: null,
    createdAt: AT,
  },
  grant: {
    id: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
    kind: 'grant',
    userId: USER_ID,
    teamId: null,
    amount: 500,
    reason: 'welcome credits',
    expiresAt: '2027-01-01T00:00:00.000Z',
    createdAt: AT,
  },
  grantRequest: {
    userId: USER_ID,
    credits: 500,
    reason: 'welcome credits',
    expiresAt: '2027-01-01T00:00:00Z',
  },
  apiKey: {
    id: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e',
    name: 'render farm',
    prefix: 'vk_Q2x9Lm',
    createdAt: AT,
    lastUsedAt: null,
  },
  apiKeyRequest: { name: 'render farm' },
  user: { id: USER_ID, email: 'ann@example.com', role: 'user', createdAt: AT },
  credentials: { email: 'ann@example.com', password: 'correct horse battery staple' },
  project: {
    id: '4d5e6f7a-8b9c-4d0e-8f1a-2b3c4d5e6f7a',
    name: 'Spring campaign',
    teamId: null,
    createdBy: USER_ID,
    createdAt: AT,
    updatedAt: AT,
  },
  projectRequest: { name: 'Spring campaign' },
  model: {
    id: 'veo3',
    name: 'Veo 3',
    kind: 'video',
    credits: 500,
    imageFields: [{ field: 'image_url', required: false }],
    inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
  },
};

export const createdApiKeyExample = {
  ...examples.apiKey,
  key: 'vk_Q2x9LmT4nV8bW1cY6dZ3eA7fB0gC5hD9iE2jF4kG8',
};
export const sessionExample = {
  token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI5YjJlIn0.sig',
  tokenType: 'Bearer',
  expiresAt: '2026-11-25T13:00:00.000Z',
  user: examples.user,
};
