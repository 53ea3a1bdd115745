import type { Tx } from './pool';

/**
 * Whether the user already holds `max` of the rows `countSql` counts (`SELECT count(*)::int AS n …`,
 * row-level security scoping it to the user). Takes a lock on (`scope`, user) first, held to the end
 * of the transaction, so that concurrent creations by the same user queue and the cap holds.
 */
export async function atPerUserCap(
  tx: Tx,
  scope: string,
  userId: string,
  countSql: string,
  max: number,
): Promise<boolean> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${scope}:${userId}`]);
  const { rows } = await tx.query<{ n: number }>(countSql);
  return rows[0]!.n >= max;
}
