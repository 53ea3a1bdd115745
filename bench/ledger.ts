// The ledger's cost against the floor Postgres sets: a raw single-row UPDATE, autocommitted.
//
// Starts its own embedded Postgres with default durability (fsync on, synchronous_commit on: what
// production pays), then measures for a fixed wall time each, with N concurrent clients:
//   raw UPDATE, one hot row          UPDATE t SET n = n + 1 WHERE id = $1 (autocommit)
//   raw UPDATE, 1,000 rows           the same, id drawn at random
//   reserve+commit, one hot account  each reserve and each commit its own transaction (withUserTx),
//                                    like the generation workflow does
//   reserve+commit, 1,000 accounts   the same, account drawn at random
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createPool, withUserTx, type Db } from '../lib/db/pool';
import { checkLedger } from '../lib/ledger/check';
import * as ledger from '../lib/ledger/ledger';
import { startStack } from '../lib/runtime/embedded-stack';
import type { Bench, BenchOptions } from './run';

const ACCOUNTS = 1000;
const WARMUP_MS = 1000;

interface Result {
  name: string;
  ops: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
}

/** Runs `op` back to back from `clients` loops for `seconds` (after a warm-up); rates are ops/s. */
async function measure(
  name: string,
  opts: BenchOptions,
  op: (client: number) => Promise<void>,
): Promise<Result> {
  const drive = async (ms: number, record: number[] | null) => {
    const until = performance.now() + ms;
    await Promise.all(
      Array.from({ length: opts.clients }, async (_, client) => {
        while (performance.now() < until) {
          const t = performance.now();
          await op(client);
          record?.push(performance.now() - t);
        }
      }),
    );
  };
  await drive(WARMUP_MS, null);
  const latencies: number[] = [];
  const started = performance.now();
  await drive(opts.seconds * 1000, latencies);
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  const result = {
    name,
    ops: latencies.length,
    seconds,
    rate: latencies.length / seconds,
    p50: pct(0.5),
    p99: pct(0.99),
  };
  opts.log(`  ${name}: ${result.rate.toFixed(0)}/s`);
  return result;
}

const pick = () => Math.floor(Math.random() * ACCOUNTS);

async function run(opts: BenchOptions): Promise<void> {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-bench-'));
  await fs.chmod(dataDir, 0o755);
  // No Temporal: a dummy address makes startStack skip its dev server.
  const stack = await startStack({ dataDir, temporalAddress: 'unused:0', uiPort: false, log: () => {} });
  const owner = new pg.Pool({ connectionString: stack.databaseUrl, max: opts.clients });
  const app: Db = createPool({ connectionString: stack.databaseUrl, role: 'velro_app', max: opts.clients });
  try {
    const settings = await owner.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'server_version')`,
    );
    opts.log(`  postgres: ${settings.rows.map((r) => `${r.name}=${r.setting}`).join(', ')}`);
    opts.log(
      `  ${opts.clients} clients, ${opts.seconds} s per measurement (+${WARMUP_MS / 1000} s warm-up), ${os.cpus().length} CPUs`,
    );

    await owner.query(`CREATE TABLE bench_counter (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`);
    await owner.query(`INSERT INTO bench_counter (id) SELECT generate_series(0, $1 - 1)`, [ACCOUNTS]);
    // Users with plenty of credit: every reserve is for 1 credit.
    const { rows: users } = await owner.query<{ id: string }>(
      `SELECT create_user('bench-' || i || '@bench.velro', NULL) AS id FROM generate_series(0, $1 - 1) i`,
      [ACCOUNTS],
    );
    await owner.query(
      `SELECT ledger_grant(gen_random_uuid(), id, 1000000000, 'bench') FROM unnest($1::uuid[]) id`,
      [users.map((u) => u.id)],
    );
    await owner.query('VACUUM ANALYZE');

    const deadline = new Date(Date.now() + 24 * 3600 * 1000);
    const pair = async (userId: string) => {
      const generationId = randomUUID();
      const reserve = await withUserTx(app, userId, (tx) =>
        ledger.reserve(tx, { id: randomUUID(), amount: 1, generationId, deadline }),
      );
      await withUserTx(app, userId, (tx) => ledger.commit(tx, { id: randomUUID(), pendingId: reserve.id }));
    };
    const update = 'UPDATE bench_counter SET n = n + 1 WHERE id = $1';
    const hotUser = users[0]!.id;

    const results: Result[] = [];
    for (const [name, op] of [
      ['raw UPDATE, one hot row', () => owner.query(update, [0])],
      ['raw UPDATE, 1,000 rows', () => owner.query(update, [pick()])],
      ['reserve+commit, one hot account', () => pair(hotUser)],
      ['reserve+commit, 1,000 accounts', () => pair(users[pick()]!.id)],
    ] as const) {
      await owner.query('CHECKPOINT');
      results.push(await measure(name, opts, async () => void (await op())));
    }

    const [rawHot, rawSpread, pairHot, pairSpread] = results as [Result, Result, Result, Result];
    const ratio: Record<string, string> = {
      [pairHot.name]: `${(pairHot.rate / rawHot.rate).toFixed(2)} × raw hot`,
      [pairSpread.name]: `${(pairSpread.rate / rawSpread.rate).toFixed(2)} × raw spread`,
    };
    const rows = results.map((r) => [
      r.name,
      r.rate.toFixed(0),
      r.p50.toFixed(2),
      r.p99.toFixed(2),
      String(r.ops),
      ratio[r.name] ?? '',
    ]);
    const header = ['measurement', 'per s', 'p50 ms', 'p99 ms', 'ops', 'ratio'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) =>
      '  ' +
      cells.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    opts.log('');
    opts.log(line(header));
    opts.log(line(widths.map((w) => '-'.repeat(w))));
    for (const r of rows) opts.log(line(r));
    const target = pairHot.rate / rawHot.rate;
    opts.log('');
    opts.log(
      `  target: hot-account pairs >= 0.5 × raw hot UPDATEs: ${target.toFixed(2)} -> ${target >= 0.5 ? 'met' : 'MISSED'}`,
    );

    const problems = await checkLedger(app);
    opts.log(`  ledger check after the run: ${problems.length} problems`);
    if (problems.length)
      throw new Error(`the ledger is unsound after the bench: ${JSON.stringify(problems.slice(0, 5))}`);
  } finally {
    await app.end();
    await owner.end();
    await stack.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

const bench: Bench = {
  name: 'ledger',
  description: 'reserve+commit pairs against raw single-row UPDATEs, hot and spread, with real fsync',
  run,
};

export default bench;
