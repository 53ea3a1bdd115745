import type { Tx } from './pool';

/** Where a newest-first page starts: right after this row. */
export interface PageAfter {
  createdAt: Date;
  id: string;
}

export interface NewestFirstQuery {
  /** `SELECT … FROM table alias` (joins allowed), without WHERE, ORDER BY or LIMIT. */
  select: string;
  /** The alias whose `created_at, id` order the list (`g` for `FROM generations g`); none: bare names. */
  alias?: string;
  /** Conditions ANDed together, each naming its parameters as `$1`, `$2`… of `params`. */
  where?: string[];
  params?: unknown[];
  after?: PageAfter;
  /**
   * The table the cursor's id is a row of, when its created_at has more precision than a cursor
   * (microseconds, cursors milliseconds): the page then starts after that row's exact time, so no row
   * of the cursor's millisecond is skipped. Without it, the cursor's time is taken as it is.
   */
  cursorTable?: string;
  /** The page size: one row more is fetched, which tells whether another page follows. */
  limit: number;
}

/**
 * One page of a list ordered newest first by `(created_at, id)`, as every list route pages: keyset
 * pagination (no OFFSET), so a page costs the same however deep it is, given an index on
 * `(…, created_at DESC, id DESC)`. Fetches `limit + 1` rows; hand them to the API's toPage.
 */
export async function newestFirst<R extends object>(tx: Tx, q: NewestFirstQuery): Promise<R[]> {
  const column = (name: string) => (q.alias ? `${q.alias}.${name}` : name);
  const params = [...(q.params ?? [])];
  const where = [...(q.where ?? [])];
  if (q.after) {
    params.push(q.after.createdAt, q.after.id);
    const [at, id] = [`$${params.length - 1}::timestamptz`, `$${params.length}::uuid`];
    const since = q.cursorTable
      ? `coalesce((SELECT c.created_at FROM ${q.cursorTable} c WHERE c.id = ${id}), ${at})`
      : at;
    where.push(`(${column('created_at')}, ${column('id')}) < (${since}, ${id})`);
  }
  params.push(q.limit + 1);
  const sql = `${q.select} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY ${column('created_at')} DESC, ${column('id')} DESC LIMIT $${params.length}`;
  return (await tx.query<R>(sql, params)).rows;
}
