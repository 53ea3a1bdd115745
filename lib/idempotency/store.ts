import type { Tx } from '../db/pool';

// Idempotency keys (`Idempotency-Key`), one row per (user, key); every function runs in the user's
// withUserTx. The reconciler forgets them after 48 hours.

export interface KeptRequest {
  requestHash: string;
  /** Null while the first request with the key still runs. */
  responseStatus: number | null;
  responseBody: string | null;
}

/**
 * Claims `key` for the request whose hash is `requestHash`: undefined when this request is the
 * first with it (and now owns it), otherwise what the key holds.
 */
export async function claimIdempotencyKey(
  tx: Tx,
  userId: string,
  key: string,
  requestHash: string,
): Promise<KeptRequest | undefined> {
  const inserted = await tx.query(
    `INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
     ON CONFLICT (user_id, key) DO NOTHING`,
    [userId, key, requestHash],
  );
  if (inserted.rowCount === 1) return undefined;
  const { rows } = await tx.query<{
    request_hash: string;
    response_status: number | null;
    response_body: string | null;
  }>(
    'SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2',
    [userId, key],
  );
  const row = rows[0];
  return (
    row && {
      requestHash: row.request_hash,
      responseStatus: row.response_status,
      responseBody: row.response_body,
    }
  );
}

/** Keeps the answer of the request that owns `key`, for its replays. */
export async function keepIdempotentAnswer(
  tx: Tx,
  userId: string,
  key: string,
  status: number,
  body: string | null,
): Promise<void> {
  await tx.query(
    `UPDATE idempotency_keys SET response_status = $3, response_body = $4, completed_at = now()
     WHERE user_id = $1 AND key = $2 AND completed_at IS NULL`,
    [userId, key, status, body],
  );
}

/** Releases a key whose request has not answered (a server failure), so a retry runs again. */
export async function releaseIdempotencyKey(tx: Tx, userId: string, key: string): Promise<void> {
  await tx.query('DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND completed_at IS NULL', [
    userId,
    key,
  ]);
}
