import type { Db } from '../db/pool';
import type { GenerationStatus } from './status';

// Inbound provider webhooks arrive before any caller is known: both functions run on the pool,
// through definer functions that return no user data (db/migrations/004_provider_requests.sql and
// 008_database_logins.sql).

/**
 * Remembers a verified delivery by the digest of its replay key: true the first time, false for a replay.
 * Receipts are kept 15 minutes, longer than a signature verifies.
 */
export async function recordProviderWebhook(
  db: Db,
  provider: string,
  replayDigest: string,
): Promise<boolean> {
  const { rows } = await db.query<{ fresh: boolean }>('SELECT record_provider_webhook($1, $2) AS fresh', [
    provider,
    replayDigest,
  ]);
  return rows[0]?.fresh ?? false;
}

/** The unfinished generations waiting on this provider request (ids and statuses only). */
export async function generationsWaitingOn(
  db: Db,
  provider: string,
  requestKey: string,
): Promise<{ id: string; status: GenerationStatus }[]> {
  const { rows } = await db.query<{ id: string; status: GenerationStatus }>(
    'SELECT id, status FROM provider_webhook_generations($1, $2)',
    [provider, requestKey],
  );
  return rows;
}
