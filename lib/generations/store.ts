import type { PageAfter } from '../db/keyset';
import type { Db, Tx } from '../db/pool';
import type { ProviderName } from '../providers/names';
import type { GenerationStatus } from './status';
import { asLedgerError } from '../ledger/errors';
import { GENERATION_COLUMNS, MEMBERS_ONLY, type GenerationRow } from './view';

// A generation's row, from admission to settlement. Every function but generationStatuses runs in
// a withUserTx: row-level security scopes it to that user's generations. The read model (the row
// clients see, loadGeneration) is in view.ts.

/** What admission records: the generation as submitted, before the provider has seen it. */
export interface NewGeneration {
  id: string;
  /** The creator. */
  userId: string;
  /** The team whose account pays; null for a personal generation. */
  teamId: string | null;
  projectId: string | null;
  model: string;
  input: Record<string, unknown>;
  credits: number;
  provider: ProviderName;
  /** The client's own hook for this generation's end (not a provider callback). */
  webhookUrl: string | null;
}

/** Creates the generation's row (status `queued`); a row already there (a retried admission) is kept. */
export async function insertGeneration(tx: Tx, g: NewGeneration): Promise<void> {
  await tx.query(
    `INSERT INTO generations (id, user_id, team_id, project_id, model, input, credits, provider, webhook_url)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
    [g.id, g.userId, g.teamId, g.projectId, g.model, g.input, g.credits, g.provider, g.webhookUrl],
  );
}

/** Whether the user (the withUserTx's) owns a generation with this id. */
export async function generationExists(tx: Tx, id: string): Promise<boolean> {
  const { rowCount } = await tx.query('SELECT 1 FROM generations WHERE id = $1', [id]);
  return (rowCount ?? 0) > 0;
}

/**
 * Who may watch a generation, if the user (the withUserTx's) may: undefined when it is not theirs
 * to see (MEMBERS_ONLY), else its team (null for a personal one), for the stream's re-checks.
 */
export async function watchableGeneration(
  tx: Tx,
  id: string,
): Promise<{ teamId: string | null } | undefined> {
  const { rows } = await tx.query<{ team_id: string | null }>(
    `SELECT g.team_id FROM generations g WHERE g.id = $1 AND ${MEMBERS_ONLY}`,
    [id],
  );
  return rows[0] && { teamId: rows[0].team_id };
}

/** The provider's id for the generation's job, once it has been submitted. */
export async function providerRequestIdOf(tx: Tx, id: string): Promise<string | null> {
  const { rows } = await tx.query<{ provider_request_id: string | null }>(
    'SELECT provider_request_id FROM generations WHERE id = $1',
    [id],
  );
  return rows[0]?.provider_request_id ?? null;
}

/** Records the provider's id for the job; the generation is then `running`, stage `submitted` (if it still runs). */
export async function recordProviderRequest(tx: Tx, id: string, requestId: string): Promise<void> {
  await tx.query(
    `UPDATE generations SET provider_request_id = $2, status = 'running', stage = 'submitted', updated_at = now()
     WHERE id = $1 AND status IN ('queued', 'running')`,
    [id, requestId],
  );
}

/** Ends the generation as `succeeded` (stage `done`), unless it has ended already. */
export async function markSucceeded(tx: Tx, id: string): Promise<void> {
  await tx.query(
    `UPDATE generations SET status = 'succeeded', stage = 'done', updated_at = now(), completed_at = now()
     WHERE id = $1 AND completed_at IS NULL`,
    [id],
  );
}

/**
 * Ends the generation as `failed` or `canceled`, stage `refunded`, with its error, unless it has
 * ended already. Its caller releases the reservation in the same transaction.
 */
export async function markRefunded(
  tx: Tx,
  id: string,
  status: 'failed' | 'canceled',
  error: { code: string; message: string },
): Promise<void> {
  await tx.query(
    `UPDATE generations SET status = $2, stage = 'refunded', error_code = $3, error_message = $4,
       updated_at = now(), completed_at = now()
     WHERE id = $1 AND completed_at IS NULL`,
    [id, status, error.code, error.message.slice(0, 1000)],
  );
}

export interface GenerationFilters {
  projectId?: string;
  status?: GenerationStatus;
  model?: string;
}

/**
 * One page of the owner's generations, newest first (`limit + 1` rows: see newestFirst), as the
 * user may see them, in one statement on the pool (list_generations, db/migrations/013: sets
 * app.user_id for that call only). A team's list needs the user to be a viewer or higher: else
 * the LedgerError of requireTeamRole (not_found, or forbidden).
 */
export async function listVisibleGenerations(
  db: Db,
  userId: string,
  owner: { teamId: string | null },
  filters: GenerationFilters,
  page: { after?: PageAfter; limit: number },
): Promise<GenerationRow[]> {
  try {
    const { rows } = await db.query<GenerationRow>({
      name: 'list-generations',
      text: `SELECT ${GENERATION_COLUMNS} FROM list_generations($1, $2, $3, $4, $5, $6, $7, $8) g`,
      values: [
        userId,
        owner.teamId,
        filters.projectId ?? null,
        filters.status ?? null,
        filters.model ?? null,
        page.after?.createdAt ?? null,
        page.after?.id ?? null,
        page.limit + 1,
      ],
    });
    return rows;
  } catch (err) {
    throw asLedgerError(err);
  }
}

/** The status fields of a generation, as the event streams watch them. */
export interface GenerationStatusRow {
  id: string;
  status: GenerationStatus;
  stage: string;
  error_code: string | null;
  error_message: string | null;
  updated_at: Date;
}

/**
 * The status fields of these generations, across users, in one statement (generation_statuses,
 * db/migrations/008_database_logins.sql): for callers that checked each one's owner already.
 */
export async function generationStatuses(db: Db, ids: string[]): Promise<GenerationStatusRow[]> {
  const { rows } = await db.query<GenerationStatusRow>(
    'SELECT id, status, stage, error_code, error_message, updated_at FROM generation_statuses($1)',
    [ids],
  );
  return rows;
}
