/** A ledger refusal, carrying the stable API error code it maps to. */
export class LedgerError extends Error {
  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    /** The database's DETAIL: the role needed (forbidden), {limit, remaining} as JSON (spend_limit_exceeded), a rule's code (team_rule). */
    readonly detail: string | null = null,
  ) {
    super(message);
    this.name = 'LedgerError';
  }
}

export type LedgerErrorCode =
  | 'invalid_amount'
  | 'insufficient_credits'
  | 'not_found'
  | 'transfer_conflict'
  | 'already_resolved'
  | 'forbidden'
  | 'spend_limit_exceeded'
  | 'team_rule';

const BY_SQLSTATE: Record<string, LedgerErrorCode> = {
  VL400: 'invalid_amount',
  VL402: 'insufficient_credits',
  VL403: 'forbidden',
  VL404: 'not_found',
  VL409: 'transfer_conflict',
  VL410: 'already_resolved',
  VL429: 'spend_limit_exceeded',
  VLT09: 'team_rule',
};

/**
 * Turns the SQLSTATEs of the ledger's and the teams' functions (class VL, see
 * db/migrations/002_ledger.sql and 009_teams.sql) into LedgerErrors.
 */
export function asLedgerError(err: unknown): unknown {
  const e = err as { code?: string; detail?: string } | null;
  const mapped = e?.code ? BY_SQLSTATE[e.code] : undefined;
  return mapped ? new LedgerError(mapped, (err as Error).message, e?.detail ?? null) : err;
}

/** The spend limit a VL429 refusal names: the member's monthly limit and what is left of it. */
export function spendLimitOf(err: LedgerError): { limit: number; remaining: number } | null {
  if (err.code !== 'spend_limit_exceeded' || !err.detail) return null;
  try {
    const d = JSON.parse(err.detail) as { limit: number; remaining: number };
    return { limit: d.limit, remaining: d.remaining };
  } catch {
    return null;
  }
}
