import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dumpSchema, SCHEMA_FILE } from '../../lib/db/schema-dump';
import { testStack } from '../support/context';

describe('db/schema.sql', () => {
  it('is the live definition of every function, view and policy of the migrated database', async () => {
    const live = await dumpSchema(testStack().databaseUrl);
    const committed = readFileSync(SCHEMA_FILE, 'utf8');
    expect(
      live,
      'db/schema.sql differs from the migrated test database: regenerate it with `npm run db:schema` ' +
        '(after changing a migration) and commit it',
    ).toBe(committed);
  });
});
