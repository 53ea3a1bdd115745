import type { Db } from '../db/pool';
import { asLedgerError } from './errors';
import type { Transfer } from './ledger';

interface Waiting<I> {
  item: I;
  resolve: (t: Transfer) => void;
  reject: (err: unknown) => void;
}

/** The most operations sent in one statement. */
const MAX_BATCH = 128;

const COLUMNS = `(b.transfer).id, (b.transfer).kind, (b.transfer).amount, (b.transfer).user_id AS "userId",
  (b.transfer).pending_id AS "pendingId", (b.transfer).generation_id AS "generationId",
  (b.transfer).expires_at AS "expiresAt", (b.transfer).reason, (b.transfer).created_at AS "createdAt",
  b.error_code AS "errorCode", b.error_message AS "errorMessage"`;

/**
 * Batches one kind of ledger operation per user, the way TigerBeetle batches transfers: while one
 * call for a user is in flight, the next ones for that user wait, then go together in one statement
 * to a `ledger_*_batch` function (one transaction, one row lock, one commit to disk for the lot).
 * No timer: a lone call goes at once, so batching happens only when an account is busy, which is
 * when it pays. Each operation still succeeds or fails on its own.
 */
export class UserBatcher<I extends { userId: string }> {
  private readonly queues = new Map<string, Waiting<I>[]>();

  /**
   * @param fn the batch function, called as fn($1 user, $2.. one array per column)
   * @param columns one array per column of the function, built from the items
   * @param single the same operation for one item: a batch of one skips the batch machinery
   *   (a subtransaction per item), which is the common case on an account that is not busy
   */
  constructor(
    private readonly db: Db,
    private readonly fn: string,
    private readonly columns: (items: I[]) => unknown[][],
    private readonly single: (item: I) => Promise<Transfer>,
    private readonly maxBatch = MAX_BATCH,
  ) {}

  run(item: I): Promise<Transfer> {
    return new Promise((resolve, reject) => {
      const queue = this.queues.get(item.userId);
      if (queue) {
        queue.push({ item, resolve, reject });
        return;
      }
      this.queues.set(item.userId, [{ item, resolve, reject }]);
      void this.drain(item.userId);
    });
  }

  /** Sends the user's waiting operations, batch after batch, until none is left. */
  private async drain(userId: string): Promise<void> {
    const queue = this.queues.get(userId)!;
    while (queue.length > 0) {
      const batch = queue.splice(0, this.maxBatch);
      if (batch.length === 1) {
        const [w] = batch as [Waiting<I>];
        await this.single(w.item).then(w.resolve, w.reject);
        continue;
      }
      try {
        const outcomes = await this.send(
          userId,
          batch.map((w) => w.item),
        );
        batch.forEach((w, i) => {
          const o = outcomes[i]!;
          if (o.errorCode) {
            w.reject(asLedgerError(Object.assign(new Error(o.errorMessage ?? ''), { code: o.errorCode })));
          } else {
            w.resolve(o.transfer);
          }
        });
      } catch (err) {
        // The statement itself failed (connection, timeout): nothing in it took effect. Callers
        // retry; the transfer ids make a retry a no-op for whatever did.
        const failure = asLedgerError(err);
        for (const w of batch) w.reject(failure);
      }
    }
    this.queues.delete(userId);
  }

  private async send(
    userId: string,
    items: I[],
  ): Promise<{ transfer: Transfer; errorCode: string | null; errorMessage: string | null }[]> {
    const columns = this.columns(items);
    const params = columns.map((_, i) => `$${i + 2}`).join(', ');
    const { rows } = await this.db.query<
      Transfer & { errorCode: string | null; errorMessage: string | null }
    >({
      name: this.fn,
      text: `SELECT ${COLUMNS} FROM ${this.fn}($1, ${params}) b ORDER BY b.ordinal`,
      values: [userId, ...columns],
    });
    if (rows.length !== items.length) {
      throw new Error(`${this.fn} answered ${rows.length} rows for ${items.length} items`);
    }
    return rows.map(({ errorCode, errorMessage, ...transfer }) => ({ transfer, errorCode, errorMessage }));
  }
}
