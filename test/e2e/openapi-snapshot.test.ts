// The OpenAPI document is a contract clients generate SDKs from: it changes only on purpose. This
// compares the served document with the committed one, test/fixtures/openapi.json; after an
// intentional change, write it anew with `UPDATE_OPENAPI_SNAPSHOT=1 npx vitest run test/e2e/openapi-snapshot.test.ts`.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../support/context';

const SNAPSHOT = path.resolve(__dirname, '../fixtures/openapi.json');

describe('the OpenAPI document', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    // Defaults only: descriptions quote configured values (limits, lifetimes).
    api = await startApi();
  });
  afterAll(() => api?.stop());

  it('is the committed one (test/fixtures/openapi.json)', async () => {
    const served = `${JSON.stringify((await api.app.inject({ url: '/openapi.json' })).json(), null, 2)}\n`;
    if (process.env.UPDATE_OPENAPI_SNAPSHOT === '1') await fs.writeFile(SNAPSHOT, served);
    expect(served).toBe(await fs.readFile(SNAPSHOT, 'utf8'));
  });
});
