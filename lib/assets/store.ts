import type { Db, Tx } from '../db/pool';

// A generation's stored outputs. Recorded by the worker (activities/outputs.ts) in a withUserTx of
// the generation's creator; served by GET /v1/assets/:id to the owner (for a team generation: the
// team's members), or to whoever holds a signed URL.

/** Where an asset's bytes are, and what they are. */
export interface AssetFile {
  storage_key: string;
  content_type: string;
  sha256: string;
}

/**
 * An asset of the user (the withUserTx's) or of a team it is a member of (not only its creator: a
 * removed creator no longer gets it), only if its generation succeeded (and so was charged).
 */
export async function findOwnAsset(tx: Tx, id: string): Promise<AssetFile | undefined> {
  const { rows } = await tx.query<AssetFile>(
    `SELECT a.storage_key, a.content_type, a.sha256 FROM assets a JOIN generations g ON g.id = a.generation_id
     WHERE a.id = $1 AND g.status = 'succeeded' AND (a.team_id IS NULL OR velro_team_role(a.team_id) IS NOT NULL)`,
    [id],
  );
  return rows[0];
}

/**
 * An asset by id alone, for a request whose URL signature was checked: the signature is the
 * authorisation (signed_asset, db/migrations/008_database_logins.sql; succeeded generations only).
 */
export async function findSignedAsset(db: Db, id: string): Promise<AssetFile | undefined> {
  const { rows } = await db.query<AssetFile>(
    'SELECT storage_key, content_type, sha256 FROM signed_asset($1)',
    [id],
  );
  return rows[0];
}

/** The id of the asset recorded at this position of the generation's outputs, if any. */
export async function assetIdAt(tx: Tx, generationId: string, position: number): Promise<string | undefined> {
  const { rows } = await tx.query<{ id: string }>(
    'SELECT id FROM assets WHERE generation_id = $1 AND position = $2',
    [generationId, position],
  );
  return rows[0]?.id;
}

/** What clients see of a stored output (GET /v1/generations/:id lists them with a signed url). */
export interface OutputMedia {
  contentType: string;
  bytes: number;
  width: number | null;
  height: number | null;
  durationMs: number | null;
  sha256: string;
}

export interface NewAsset extends OutputMedia {
  id: string;
  generationId: string;
  userId: string;
  position: number;
  storageKey: string;
}

/**
 * Records an output, only while its generation still runs (one that has ended, refunded by the
 * reconciler after an operator's terminate, say, gets no outputs), with its generation's team. Its
 * id; undefined when nothing was recorded: another attempt recorded that position first, or the
 * generation has ended.
 */
export async function insertAssetWhileRunning(tx: Tx, a: NewAsset): Promise<string | undefined> {
  const { rows } = await tx.query<{ id: string }>(
    `INSERT INTO assets (id, generation_id, user_id, team_id, position, storage_key, content_type, bytes, width, height,
                         duration_ms, sha256)
       SELECT $1, $2, $3, g.team_id, $4, $5, $6, $7, $8, $9, $10, $11
       FROM generations g WHERE g.id = $2 AND g.status IN ('queued', 'running')
       ON CONFLICT (generation_id, position) DO NOTHING RETURNING id`,
    [
      a.id,
      a.generationId,
      a.userId,
      a.position,
      a.storageKey,
      a.contentType,
      a.bytes,
      a.width,
      a.height,
      a.durationMs,
      a.sha256,
    ],
  );
  return rows[0]?.id;
}
