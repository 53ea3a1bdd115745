/** A ledger refusal, carrying the stable API error code it maps to. */
export class LedgerError extends Error {
  constructor(
    readonly code: LedgerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LedgerError';
  }
}

export type LedgerErrorCode =
  'invalid_amount' | 'insufficient_credits' | 'not_found' | 'transfer_conflict' | 'already_resolved';

const BY_SQLSTATE: Record<string, LedgerErrorCode> = {
  VL400: 'invalid_amount',
  VL402: 'insufficient_credits',
  VL404: 'not_found',
  VL409: 'transfer_conflict',
  VL410: 'already_resolved',
};

/** Turns the ledger functions' SQLSTATEs (class VL, see db/migrations/002_ledger.sql) into LedgerErrors. */
export function asLedgerError(err: unknown): unknown {
  const code = (err as { code?: string } | null)?.code;
  const mapped = code ? BY_SQLSTATE[code] : undefined;
  return mapped ? new LedgerError(mapped, (err as Error).message) : err;
}
