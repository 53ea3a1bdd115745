import type { Tx } from '../db/pool';
import { asLedgerError } from './errors';

export interface Transfer {
  id: string;
  kind: 'grant' | 'reserve' | 'commit' | 'release' | 'expire';
  amount: number;
  userId: string;
  pendingId: string | null;
  generationId: string | null;
  expiresAt: Date | null;
  reason: string | null;
  createdAt: Date;
}

export interface Balance {
  available: number;
  reserved: number;
  spent: number;
  granted: number;
  expired: number;
}

const TRANSFER_COLUMNS = `id, kind, amount, user_id AS "userId", pending_id AS "pendingId",
  generation_id AS "generationId", expires_at AS "expiresAt", reason, created_at AS "createdAt"`;

async function call(tx: Tx, sql: string, params: unknown[]): Promise<Transfer> {
  try {
    const { rows } = await tx.query<Transfer>(`SELECT ${TRANSFER_COLUMNS} FROM ${sql}`, params);
    return rows[0]!;
  } catch (err) {
    throw asLedgerError(err);
  }
}

/*
 * Each operation runs inside the caller's transaction (a user transaction for reserve, commit and
 * release; a system transaction for grants), so it commits atomically with the caller's other
 * writes, e.g. a generation's status.
 */

export function reserve(
  tx: Tx,
  p: { id: string; amount: number; generationId: string | null; deadline: Date },
) {
  return call(tx, 'ledger_reserve($1, $2, $3, $4)', [p.id, p.amount, p.generationId, p.deadline]);
}

export function commit(tx: Tx, p: { id: string; pendingId: string }) {
  return call(tx, 'ledger_commit($1, $2)', [p.id, p.pendingId]);
}

export function release(tx: Tx, p: { id: string; pendingId: string; reason?: string }) {
  return call(tx, 'ledger_release($1, $2, $3)', [p.id, p.pendingId, p.reason ?? null]);
}

export function grant(
  tx: Tx,
  p: { id: string; userId: string; amount: number; reason: string; expiresAt?: Date | null },
) {
  return call(tx, 'ledger_grant($1, $2, $3, $4, $5)', [
    p.id,
    p.userId,
    p.amount,
    p.reason,
    p.expiresAt ?? null,
  ]);
}

/** The balance of the user the transaction is scoped to. */
export async function balance(tx: Tx, userId: string): Promise<Balance> {
  const { rows } = await tx.query<Balance>(
    `SELECT a.credits_posted - a.debits_posted - a.debits_pending AS available,
            a.debits_pending AS reserved,
            a.debits_posted - coalesce(x.expired, 0) AS spent,
            a.credits_posted AS granted,
            coalesce(x.expired, 0) AS expired
     FROM credit_accounts a
     LEFT JOIN LATERAL (SELECT sum(amount)::bigint AS expired FROM credit_transfers
                        WHERE account_id = a.id AND kind = 'expire') x ON true
     WHERE a.user_id = $1`,
    [userId],
  );
  return rows[0] ?? { available: 0, reserved: 0, spent: 0, granted: 0, expired: 0 };
}
