import { signAssetPath } from '../auth/signed-urls';
import type { Db, Tx } from '../db/pool';
import type { OutputMedia } from '../assets/store';
import type { GenerationStatus } from './status';

/** Default lifetime of the signed output URLs (ASSET_URL_TTL_SECONDS overrides it). */
const ASSET_URL_TTL_SECONDS = 24 * 60 * 60;

/** A generation as clients see it (GET /v1/generations/:id, event streams, webhooks). */
export interface GenerationView {
  id: string;
  model: string;
  status: GenerationStatus;
  stage: string;
  input: Record<string, unknown>;
  projectId: string | null;
  /** The team whose generation this is (its account paid); null for a personal one. */
  teamId: string | null;
  /** The user who made it (a team key's generations: the key's own user). */
  createdBy: string;
  credits: { amount: number; state: 'reserved' | 'charged' | 'refunded' | 'none' };
  outputs: (OutputMedia & { id: string; url: string })[];
  /** The images it was given (uploads, or copies of the URLs given), once the workflow has taken them. */
  inputs: GenerationInputView[];
  /** Where it waits for a provider slot (1: next) while its stage is `waiting for capacity`; else null. */
  queuePosition: number | null;
  error: { code: string; message: string } | null;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
}

export interface GenerationInputView {
  field: string;
  uploadId: string;
  contentType: string;
  width: number;
  height: number;
}

interface Row {
  id: string;
  model: string;
  status: GenerationStatus;
  stage: string;
  input: Record<string, unknown>;
  project_id: string | null;
  team_id: string | null;
  user_id: string;
  credits: number;
  error_code: string | null;
  error_message: string | null;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
  credit_state: GenerationView['credits']['state'];
  assets: {
    id: string;
    content_type: string;
    bytes: number;
    width: number | null;
    height: number | null;
    duration_ms: number | null;
    sha256: string;
  }[];
  inputs: { field: string; upload_id: string; content_type: string; width: number; height: number }[];
  queue_position: number | null;
}

// The columns of the view generation_views (db/migrations/013_read_path.sql): the credit state is a
// column the ledger keeps, outputs (once succeeded, i.e. charged: one that failed or was canceled
// lists none) and inputs (image_url before end_image_url) are joined in the same statement.
// Row-level security shows them as it shows the generation (the view runs as its caller).
export const GENERATION_COLUMNS = `g.id, g.model, g.status, g.stage, g.input, g.project_id, g.team_id, g.user_id, g.credits,
  g.error_code, g.error_message, g.created_at, g.updated_at, g.completed_at, g.credit_state, g.assets,
  g.inputs, g.queue_position`;

export const GENERATION_SELECT = `SELECT ${GENERATION_COLUMNS} FROM generation_views g`;

/**
 * What the API shows (with `generations g`): a team generation to the team's members only. Row-level
 * security also shows one to its creator while it is unfinished, so the worker (acting as the
 * creator) settles it even after the creator's removal; a removed creator's requests must not.
 */
export const MEMBERS_ONLY = '(g.team_id IS NULL OR velro_team_role(g.team_id) IS NOT NULL)';

export function toView(
  row: Row,
  baseUrl: string,
  signingKey: Buffer,
  urlTtlSeconds: number = ASSET_URL_TTL_SECONDS,
): GenerationView {
  return {
    id: row.id,
    model: row.model,
    status: row.status,
    stage: row.stage,
    input: row.input,
    projectId: row.project_id,
    teamId: row.team_id,
    createdBy: row.user_id,
    credits: { amount: row.credits, state: row.credit_state },
    outputs: row.assets.map((a) => ({
      id: a.id,
      url: baseUrl + signAssetPath(signingKey, a.id, urlTtlSeconds),
      contentType: a.content_type,
      bytes: Number(a.bytes),
      width: a.width,
      height: a.height,
      durationMs: a.duration_ms,
      sha256: a.sha256,
    })),
    inputs: row.inputs.map((i) => ({
      field: i.field,
      uploadId: i.upload_id,
      contentType: i.content_type,
      width: i.width,
      height: i.height,
    })),
    queuePosition: row.queue_position,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    completedAt: row.completed_at?.toISOString() ?? null,
  };
}

/** The generation as row-level security shows it to the user (the worker's reads). */
export async function loadGeneration(tx: Tx, id: string): Promise<Row | undefined> {
  const { rows } = await tx.query<Row>(`${GENERATION_SELECT} WHERE g.id = $1`, [id]);
  return rows[0];
}

/** The generation if the user may see it through the API (MEMBERS_ONLY). */
export async function loadVisibleGeneration(tx: Tx, id: string): Promise<Row | undefined> {
  const { rows } = await tx.query<Row>(`${GENERATION_SELECT} WHERE g.id = $1 AND ${MEMBERS_ONLY}`, [id]);
  return rows[0];
}

/**
 * The generation if the user may see it through the API, in one statement on the pool
 * (read_generation: sets app.user_id for that call only, then reads under row-level security as
 * loadVisibleGeneration does).
 */
export async function readVisibleGeneration(db: Db, userId: string, id: string): Promise<Row | undefined> {
  const { rows } = await db.query<Row>({
    name: 'read-generation',
    text: `SELECT ${GENERATION_COLUMNS} FROM read_generation($1, $2) g`,
    values: [userId, id],
  });
  return rows[0];
}

export type { Row as GenerationRow };
