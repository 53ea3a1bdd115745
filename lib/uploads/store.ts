import { newestFirst, type PageAfter } from '../db/keyset';
import type { SystemDb, Tx } from '../db/pool';
import type { InputImageType } from '../media/image-check';

// Input images (db/migrations/011_uploads.sql). Every function but the purge runs in a withUserTx:
// row-level security shows a user its own personal uploads and its teams' uploads, and decides who
// may delete one.

export type UploadContentType = InputImageType;

const EXTENSIONS: Record<UploadContentType, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
};

/** The file name an upload's bytes are kept (and handed to providers) under. */
export const uploadFileName = (id: string, contentType: UploadContentType) =>
  `${id}.${EXTENSIONS[contentType]}`;

/** Where an upload's bytes are in Velro storage. */
export const uploadStorageKey = (id: string, contentType: UploadContentType) =>
  `uploads/${uploadFileName(id, contentType)}`;

export interface UploadRow {
  id: string;
  user_id: string;
  team_id: string | null;
  storage_key: string;
  content_type: UploadContentType;
  bytes: number;
  width: number;
  height: number;
  sha256: string;
  source: 'upload' | 'url';
  source_url: string | null;
  created_at: Date;
  used_at: Date | null;
}

/** An upload as clients see it (POST/GET /v1/uploads). */
export interface UploadView {
  id: string;
  teamId: string | null;
  createdBy: string;
  contentType: UploadContentType;
  bytes: number;
  width: number;
  height: number;
  sha256: string;
  /** The upload's own URL (its bytes, for its owner): also accepted as an `image_url`. */
  url: string;
  /** When an unused upload is removed; null once a generation uses it (then it stays). */
  expiresAt: string | null;
  createdAt: string;
}

const COLUMNS =
  'id, user_id, team_id, storage_key, content_type, bytes::int AS bytes, width, height, sha256, source, source_url, created_at, used_at';

/** The path of an upload's bytes on the API (GET, for its owner). */
export const uploadContentPath = (id: string) => `/v1/uploads/${id}/content`;

export function toUploadView(row: UploadRow, baseUrl: string, retentionHours: number): UploadView {
  return {
    id: row.id,
    teamId: row.team_id,
    createdBy: row.user_id,
    contentType: row.content_type,
    bytes: Number(row.bytes),
    width: row.width,
    height: row.height,
    sha256: row.sha256,
    url: baseUrl + uploadContentPath(row.id),
    expiresAt: row.used_at
      ? null
      : new Date(row.created_at.getTime() + retentionHours * 3_600_000).toISOString(),
    createdAt: row.created_at.toISOString(),
  };
}

export interface NewUpload {
  id: string;
  userId: string;
  teamId: string | null;
  storageKey: string;
  contentType: UploadContentType;
  bytes: number;
  width: number;
  height: number;
  sha256: string;
  source?: 'upload' | 'url';
  sourceUrl?: string | null;
}

/**
 * Records an upload whose bytes are already stored. With an id that exists already (a retried copy
 * of a client's URL, its id derived from the generation), the existing row is returned unchanged.
 */
export async function insertUpload(tx: Tx, u: NewUpload): Promise<UploadRow> {
  const { rows } = await tx.query<UploadRow>(
    `INSERT INTO uploads (id, user_id, team_id, storage_key, content_type, bytes, width, height, sha256, source, source_url)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (id) DO NOTHING RETURNING ${COLUMNS}`,
    [
      u.id,
      u.userId,
      u.teamId,
      u.storageKey,
      u.contentType,
      u.bytes,
      u.width,
      u.height,
      u.sha256,
      u.source ?? 'upload',
      u.sourceUrl ?? null,
    ],
  );
  if (rows[0]) return rows[0];
  const existing = await getUpload(tx, u.id);
  if (!existing) throw new Error(`upload ${u.id} exists but is not visible to its maker`);
  return existing;
}

/** A live (not deleted, not purged) upload the user may read, or undefined. */
export async function getUpload(tx: Tx, id: string): Promise<UploadRow | undefined> {
  const { rows } = await tx.query<UploadRow>(
    `SELECT ${COLUMNS} FROM uploads WHERE id = $1 AND deleted_at IS NULL AND purged_at IS NULL`,
    [id],
  );
  return rows[0];
}

/** Whose uploads a list shows: a user's personal ones, or a team's (the caller a member). */
export type UploadOwner = { userId: string; teamId?: undefined } | { teamId: string; userId?: undefined };

/** One page of the owner's live uploads, newest first (`limit + 1` rows: see newestFirst). */
export function listUploads(
  tx: Tx,
  owner: UploadOwner,
  page: { after?: PageAfter; limit: number },
): Promise<UploadRow[]> {
  const where = owner.teamId ? ['team_id = $1'] : ['user_id = $1', 'team_id IS NULL'];
  return newestFirst<UploadRow>(tx, {
    select: `SELECT ${COLUMNS} FROM uploads`,
    where: [...where, 'deleted_at IS NULL', 'purged_at IS NULL'],
    params: [owner.teamId ?? owner.userId],
    ...page,
  });
}

/**
 * Whether there was a live upload with this id the user may delete (its maker; a team's admins).
 * Hides it at once; the reconciler removes its bytes unless a generation used it.
 */
export async function deleteUpload(tx: Tx, id: string): Promise<boolean> {
  const { rowCount } = await tx.query(
    'UPDATE uploads SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL AND purged_at IS NULL',
    [id],
  );
  return rowCount !== 0;
}

/**
 * Records that the generation (the user's own) uses the upload for `field`, and keeps the upload
 * from then on. False when the upload is not there to use (missing, deleted, purged, another
 * owner's than the generation's) or the field already names another upload. Idempotent.
 */
export async function linkGenerationInput(
  tx: Tx,
  link: { generationId: string; field: string; uploadId: string },
): Promise<boolean> {
  const { rows } = await tx.query<{ ok: boolean }>('SELECT link_generation_input($1, $2, $3) AS ok', [
    link.generationId,
    link.field,
    link.uploadId,
  ]);
  return rows[0]!.ok;
}

/** A generation's input, with its upload and what its provider was handed. */
export interface GenerationInputRow {
  field: string;
  upload_id: string;
  storage_key: string;
  content_type: UploadContentType;
  bytes: number;
  width: number;
  height: number;
  sha256: string;
  provider: string | null;
  provider_url: string | null;
  provider_url_expires_at: Date | null;
}

/**
 * The inputs of a generation the user may see, by field. A deleted upload is still read: the
 * generation keeps its exact input (a used upload is never purged).
 */
export async function generationInputs(tx: Tx, generationId: string): Promise<GenerationInputRow[]> {
  const { rows } = await tx.query<GenerationInputRow>(
    `SELECT i.field, i.upload_id, u.storage_key, u.content_type, u.bytes::int AS bytes, u.width, u.height,
            u.sha256, i.provider, i.provider_url, i.provider_url_expires_at
     FROM generation_inputs i JOIN uploads u ON u.id = i.upload_id
     WHERE i.generation_id = $1 ORDER BY i.field DESC`,
    [generationId],
  );
  return rows;
}

/** Records what the provider was handed for the field, so a retry hands it the same file. */
export async function recordProviderUrl(
  tx: Tx,
  input: { generationId: string; field: string; provider: string; url: string; expiresAt: Date | null },
): Promise<void> {
  await tx.query(
    `UPDATE generation_inputs SET provider = $3, provider_url = $4, provider_url_expires_at = $5
     WHERE generation_id = $1 AND field = $2`,
    [input.generationId, input.field, input.provider, input.url, input.expiresAt],
  );
}

/**
 * Removes uploads no generation used that were deleted, or are older than the retention: marks
 * them purged (a later use is refused), then returns their storage keys for the caller to delete.
 * At most `limit` per call. On the velro_system login: it acts across users.
 */
export async function purgeUnusedUploads(
  db: SystemDb,
  retentionHours: number,
  limit = 500,
): Promise<{ id: string; storageKey: string }[]> {
  const { rows } = await db.query<{ id: string; storage_key: string }>(
    `UPDATE uploads SET purged_at = now()
     WHERE id IN (SELECT id FROM uploads
                  WHERE purged_at IS NULL AND used_at IS NULL
                    AND (deleted_at IS NOT NULL OR created_at < now() - make_interval(hours => $1))
                  ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
       AND purged_at IS NULL AND used_at IS NULL
     RETURNING id, storage_key`,
    [retentionHours, limit],
  );
  return rows.map((r) => ({ id: r.id, storageKey: r.storage_key }));
}
