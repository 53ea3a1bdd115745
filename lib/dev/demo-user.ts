// Development only (lib/dev/): the demo user `npm start` creates on first start.
import fs from 'node:fs/promises';
import path from 'node:path';
import { generateApiKey, hashApiKey } from '../auth/api-keys';
import { withSystemTx, type SystemDb } from '../db/pool';
import * as ledger from '../ledger/ledger';

export const DEMO_EMAIL = 'demo@velro.local';
export const DEMO_CREDITS = 1000;
// Fixed, so that a second start never grants the demo credits twice.
const DEMO_GRANT_ID = '00000000-0000-4000-8000-00000000de30';

/**
 * On first start: a demo user holding 1,000 credits, with an API key written to
 * `<dataDir>/demo-api-key`. Later starts reuse both.
 */
export async function ensureDemoUser(
  db: SystemDb,
  dataDir: string,
): Promise<{ email: string; apiKey: string }> {
  const keyFile = path.join(dataDir, 'demo-api-key');
  const saved = await fs.readFile(keyFile, 'utf8').then(
    (s) => s.trim(),
    () => undefined,
  );
  return withSystemTx(db, async (tx) => {
    await tx.query('SELECT create_user($1, NULL)', [DEMO_EMAIL]);
    const { rows } = await tx.query<{ id: string }>('SELECT id FROM find_user_by_email($1)', [DEMO_EMAIL]);
    const userId = rows[0]!.id;
    await ledger.grant(tx, { id: DEMO_GRANT_ID, userId, amount: DEMO_CREDITS, reason: 'demo credits' });
    if (saved) {
      const valid = await tx.query('SELECT 1 FROM auth_api_key($1)', [hashApiKey(saved)]);
      if (valid.rowCount) return { email: DEMO_EMAIL, apiKey: saved };
    }
    const key = generateApiKey();
    await tx.query('SELECT create_api_key($1, $2, $3, $4)', [userId, 'demo', key.prefix, key.hash]);
    await fs.writeFile(keyFile, `${key.key}\n`, { mode: 0o600 });
    return { email: DEMO_EMAIL, apiKey: key.key };
  });
}
