import type { Db } from '../db/pool';

/** Where an upload's bytes are, and what they are. */
export interface UploadFile {
  storage_key: string;
  content_type: string;
  sha256: string;
}

/**
 * An upload by id alone, for a request whose URL signature was checked: the signature is the
 * authorisation (signed_upload, db/migrations/011_uploads.sql: not purged, and not deleted unless
 * a generation used it).
 */
export async function findSignedUpload(db: Db, id: string): Promise<UploadFile | undefined> {
  const { rows } = await db.query<UploadFile>(
    'SELECT storage_key, content_type, sha256 FROM signed_upload($1)',
    [id],
  );
  return rows[0];
}
