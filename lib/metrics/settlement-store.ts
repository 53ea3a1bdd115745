import type { Tx } from '../db/pool';

export interface SettlingGeneration {
  model: string;
  /** From its creation to now (the transaction's time, which completed_at is set to). */
  ageSeconds: number;
}

/**
 * The generation about to be ended in this transaction, locked; undefined when it has ended already
 * (a retried settlement), so an outcome is counted once. Call it after the ledger step and before
 * the status update, the order in which those lock their rows. (Not RETURNING from the update:
 * row-level security would then check the ended row against a removed team member's SELECT policy.)
 */
export async function settlingGeneration(
  tx: Tx,
  generationId: string,
): Promise<SettlingGeneration | undefined> {
  const { rows } = await tx.query<{ model: string; age_seconds: number }>(
    `SELECT model, extract(epoch FROM now() - created_at)::float8 AS age_seconds
     FROM generations WHERE id = $1 AND completed_at IS NULL FOR UPDATE`,
    [generationId],
  );
  const row = rows[0];
  return row ? { model: row.model, ageSeconds: row.age_seconds } : undefined;
}
