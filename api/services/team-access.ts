import { LedgerError } from '../../lib/ledger/errors';
import { ledgerProblem } from '../ledger-problems';
import type { Caller } from '../plugins/auth';

// Shared work (projects, generations, their streams and outputs) in a team: which team a request
// is for, and its refusals as problems.

/** The team a request is for: the one it names, else a team key's own team; null: personal. */
export const teamOf = (caller: Caller, named: string | null | undefined): string | null =>
  named ?? caller.teamId ?? null;

/**
 * Runs `work`, answering a team refusal (a LedgerError of lib/teams/store.ts's requireTeamRole or
 * of the ledger) as its problem: 404 "Team not found." (never revealing the team), 403 naming the
 * role needed.
 */
export async function answeringTeamRefusals<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof LedgerError) throw ledgerProblem(err, 'Team not found.');
    throw err;
  }
}
