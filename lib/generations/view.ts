import { signAssetPath } from '../auth/signed-urls';
import { WAITING_STAGE } from '../capacity/store';
import type { Tx } from '../db/pool';
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
  ledger_kinds: string[] | null;
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

// Outputs are listed only once the generation has succeeded, i.e. once it has been charged: one that
// failed or was canceled (even after some outputs were stored) lists none. Inputs are listed whatever
// the outcome (image_url before end_image_url); row-level security shows them as it shows the generation.
export const GENERATION_SELECT = `
  SELECT g.id, g.model, g.status, g.stage, g.input, g.project_id, g.team_id, g.user_id, g.credits,
         g.error_code, g.error_message,
         g.created_at, g.updated_at, g.completed_at,
         (SELECT array_agg(t.kind) FROM credit_transfers t WHERE t.generation_id = g.id) AS ledger_kinds,
         coalesce((SELECT json_agg(json_build_object('id', a.id, 'content_type', a.content_type, 'bytes', a.bytes,
                    'width', a.width, 'height', a.height, 'duration_ms', a.duration_ms, 'sha256', a.sha256)
                    ORDER BY a.position)
                   FROM assets a WHERE a.generation_id = g.id AND g.status = 'succeeded'), '[]') AS assets,
         coalesce((SELECT json_agg(json_build_object('field', i.field, 'upload_id', i.upload_id,
                    'content_type', u.content_type, 'width', u.width, 'height', u.height) ORDER BY i.field DESC)
                   FROM generation_inputs i JOIN uploads u ON u.id = i.upload_id
                   WHERE i.generation_id = g.id), '[]') AS inputs,
         CASE WHEN g.stage = '${WAITING_STAGE}' THEN
           (SELECT p.queue_position FROM capacity_queue_positions(ARRAY[g.id]) p) END AS queue_position
  FROM generations g`;

/**
 * What the API shows (with `generations g`): a team generation to the team's members only. Row-level
 * security also shows one to its creator while it is unfinished, so the worker (acting as the
 * creator) settles it even after the creator's removal; a removed creator's requests must not.
 */
export const MEMBERS_ONLY = '(g.team_id IS NULL OR velro_team_role(g.team_id) IS NOT NULL)';

function creditState(kinds: string[] | null): GenerationView['credits']['state'] {
  const k = new Set(kinds ?? []);
  if (k.has('commit')) return 'charged';
  if (k.has('release')) return 'refunded';
  if (k.has('reserve')) return 'reserved';
  return 'none';
}

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
    credits: { amount: row.credits, state: creditState(row.ledger_kinds) },
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

export type { Row as GenerationRow };
