/** What one item of a batch came to: its result, or the error that refused it alone. */
export type Outcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

interface Waiting<I, R> {
  item: I;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}

/** The most operations sent in one statement. */
const MAX_BATCH = 128;

/**
 * Batches one kind of operation per user, the way TigerBeetle batches transfers: while one call
 * for a user is in flight, the next ones for that user wait, then go together in one call of
 * `sendBatch` (for the ledger: one statement, one transaction, one row lock, one commit to disk).
 * No timer: a lone call goes at once, through `single`, so batching happens only when an account is
 * busy, which is when it pays. Each item still succeeds or fails on its own.
 */
export class UserBatcher<I extends { userId: string }, R> {
  private readonly queues = new Map<string, Waiting<I, R>[]>();

  /**
   * @param sendBatch runs the items, in order, answering one outcome per item; if it throws, every
   *   item failed with it (nothing in it took effect)
   * @param single runs one item: a batch of one skips the batch machinery
   */
  constructor(
    private readonly sendBatch: (userId: string, items: I[]) => Promise<Outcome<R>[]>,
    private readonly single: (item: I) => Promise<R>,
    private readonly maxBatch = MAX_BATCH,
  ) {}

  run(item: I): Promise<R> {
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
        const [w] = batch as [Waiting<I, R>];
        await this.single(w.item).then(w.resolve, w.reject);
        continue;
      }
      try {
        const outcomes = await this.sendBatch(
          userId,
          batch.map((w) => w.item),
        );
        if (outcomes.length !== batch.length) {
          throw new Error(`a batch of ${batch.length} answered ${outcomes.length} outcomes`);
        }
        batch.forEach((w, i) => {
          const o = outcomes[i]!;
          if (o.ok) w.resolve(o.value);
          else w.reject(o.error);
        });
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.queues.delete(userId);
  }
}
