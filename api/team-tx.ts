import type { FastifyRequest } from 'fastify';
import { withUserTx, type Db, type Tx, type TxScope } from '../lib/db/pool';
import { LedgerError } from '../lib/ledger/errors';
import { ApiError, teamNotFound } from './errors';
import { ledgerProblem } from './ledger-problems';
import { callerOf } from './plugins/auth';

/** Who a team route acts for, with its request id and key: what the audit trail records. */
export function teamScope(req: FastifyRequest): TxScope {
  const caller = callerOf(req);
  return { userId: caller.id, requestId: req.id, apiKeyId: caller.apiKeyId };
}

export const memberNotFound = () => new ApiError(404, 'not_found', 'Member not found.');

/**
 * Runs `fn` (team store calls) in the caller's transaction, answering the database's refusals as
 * the API does: no team for the caller → 404 "Team not found." (never reveal a team), no such member
 * → 404 "Member not found.", a role too low → 403 with `requiredRole`, a team rule → 409 with its code.
 */
export async function inTeamTx<T>(db: Db, req: FastifyRequest, fn: (tx: Tx) => Promise<T>): Promise<T> {
  try {
    return await withUserTx(db, teamScope(req), fn);
  } catch (err) {
    if (!(err instanceof LedgerError)) throw err;
    if (err.code === 'not_found') throw err.detail === 'member' ? memberNotFound() : teamNotFound();
    throw ledgerProblem(err);
  }
}
