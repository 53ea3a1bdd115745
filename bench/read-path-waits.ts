// What the API's database sessions are doing while a load runs: pg_stat_activity sampled every
// 100 ms through the owner login (velro_app cannot see other sessions' wait events).
import pg from 'pg';

export interface WaitSample {
  /** `wait_event_type:wait_event`, or the state when the session waits on nothing (running). */
  what: string;
  /** Sessions in this state on average over the samples (1 = one session throughout). */
  average: number;
}

export function startWaitSampler(ownerUrl: string): () => Promise<WaitSample[]> {
  const client = new pg.Client({ connectionString: ownerUrl });
  const counts = new Map<string, number>();
  let samples = 0;
  let stopped = false;
  const done = (async () => {
    await client.connect();
    while (!stopped) {
      const { rows } = await client.query<{ what: string; n: number }>(
        `SELECT coalesce(wait_event_type || ':' || wait_event, state) AS what, count(*)::int AS n
           FROM pg_stat_activity
          WHERE usename = 'velro_app' AND state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid()
          GROUP BY 1`,
      );
      samples++;
      for (const r of rows) counts.set(r.what, (counts.get(r.what) ?? 0) + r.n);
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.end();
  })();
  return async () => {
    stopped = true;
    await done;
    return [...counts]
      .map(([what, n]) => ({ what, average: n / Math.max(1, samples) }))
      .sort((a, b) => b.average - a.average);
  };
}
