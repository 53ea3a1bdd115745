// The baseline's one Postgres INSERT, into a table of the bench's own (created by the bench at start:
// BASELINE_TABLE_SQL, not a migration), on the velro_app login as Velro's admission is.
import type { Pool } from 'pg';

/** Where the baselines' workflows run (bench/baseline-worker.ts). */
export const BASELINE_TASK_QUEUE = 'bench-baseline';
export const BASELINE_TABLE = 'bench_baseline_rows';
export const BASELINE_TABLE_SQL = [
  `CREATE TABLE IF NOT EXISTS ${BASELINE_TABLE} (id text PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())`,
  `GRANT INSERT ON ${BASELINE_TABLE} TO velro_app`,
];

export function baselineActivities(pool: Pool) {
  return {
    async insertBaselineRow(id: string): Promise<string> {
      await pool.query(`INSERT INTO ${BASELINE_TABLE} (id) VALUES ($1)`, [id]);
      return id;
    },
  };
}

export type BaselineActivities = ReturnType<typeof baselineActivities>;
