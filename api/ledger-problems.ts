import { LedgerError, spendLimitOf } from '../lib/ledger/errors';
import { ApiError, needsRole } from './errors';

/**
 * The problem a ledger or team function's refusal (LedgerError, lib/ledger/errors.ts) answers with.
 * `notFound` names what was not found (a user, a team, a member), for the 404's detail.
 */
export function ledgerProblem(err: LedgerError, notFound = 'Not found.'): ApiError {
  switch (err.code) {
    case 'invalid_amount':
      return new ApiError(400, 'invalid_amount', err.message);
    case 'insufficient_credits':
      return new ApiError(402, 'insufficient_credits', err.message);
    case 'spend_limit_exceeded': {
      const limit = spendLimitOf(err);
      return new ApiError(402, 'spend_limit_exceeded', err.message, limit ? { members: limit } : {});
    }
    case 'forbidden':
      return needsRole(err.detail ?? 'admin');
    case 'not_found':
      return new ApiError(404, 'not_found', notFound);
    case 'transfer_conflict':
    case 'already_resolved':
      return new ApiError(409, 'transfer_conflict', err.message);
    case 'team_rule':
      // DETAIL carries the rule's own code where the rule has one (team_has_credits…).
      return new ApiError(409, err.detail ?? 'conflict', err.message);
  }
}
