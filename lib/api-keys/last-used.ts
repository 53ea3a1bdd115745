import type { Db } from '../db/pool';

/** Keys a touch_api_keys call takes at most (db/migrations/013_read_path.sql). */
const BATCH = 1000;

/**
 * When API keys were last used, kept in memory and written in batches (touch_api_keys: one
 * statement per 1,000 keys), so that authenticating a request writes nothing. A key's time only
 * moves forward, here and in the database.
 */
export class LastUsedBatcher {
  private pending = new Map<string, { hash: Buffer; at: Date }>();

  constructor(private readonly log: { warn(details: object, message: string): void }) {}

  get size(): number {
    return this.pending.size;
  }

  note(hash: Buffer, at: Date = new Date()): void {
    const id = hash.toString('hex');
    const seen = this.pending.get(id);
    if (!seen || seen.at < at) this.pending.set(id, { hash, at });
  }

  /** Writes what was noted so far; on failure it is kept for the next flush. */
  async flush(db: Db): Promise<void> {
    if (this.pending.size === 0) return;
    const taken = [...this.pending.values()];
    this.pending = new Map();
    for (let i = 0; i < taken.length; i += BATCH) {
      const batch = taken.slice(i, i + BATCH);
      try {
        await db.query({
          name: 'touch-api-keys',
          text: 'SELECT touch_api_keys($1, $2)',
          values: [batch.map((k) => k.hash), batch.map((k) => k.at)],
        });
      } catch (err) {
        this.log.warn({ err, keys: batch.length }, 'could not record API keys last used; will retry');
        for (const k of taken.slice(i)) this.note(k.hash, k.at);
        return;
      }
    }
  }
}
