// A connection cut while it is checked out of the pool (a Postgres restart mid-transaction) must fail
// that transaction, not the process: the cluster fault test saw a worker die of pg's unhandled
// 'error' event. lib/db/pool.ts listens on every client it lends.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createSystemPool, withSystemTx } from '../../lib/db/pool';
import { testStack } from '../support/context';

describe('a pooled connection cut while checked out', () => {
  it('reports the error to the pool owner, fails the transaction and leaves the pool usable', async () => {
    const errors: Error[] = [];
    const pool = createSystemPool({ connectionString: testStack().systemDatabaseUrl, max: 2 }, (err) =>
      errors.push(err),
    );
    const killer = new pg.Client({ connectionString: testStack().systemDatabaseUrl });
    await killer.connect();
    try {
      const tx = withSystemTx(pool, async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        // Between statements, no query in flight: the cut arrives as an 'error' event on the client.
        await killer.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        await new Promise((resolve) => client.once('end', resolve));
        await client.query('SELECT 1');
      });
      await expect(tx).rejects.toThrow();
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.map((e) => e.message).join('; ')).toMatch(/terminat/);

      const { rows } = await pool.query<{ one: number }>('SELECT 1 AS one');
      expect(rows).toEqual([{ one: 1 }]);
      expect(pool.totalCount).toBe(1);
    } finally {
      await killer.end();
      await pool.end();
    }
  });
});
