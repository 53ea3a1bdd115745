// The ledger's cost against the floor Postgres sets: a raw single-row UPDATE, autocommitted.
//
// Starts its own embedded Postgres with default durability (fsync on, synchronous_commit on: what
// production pays), then measures for a fixed wall time each, with N concurrent clients:
//   raw UPDATE, one hot row          UPDATE t SET n = n + 1 WHERE id = $1 (autocommit)
//   raw UPDATE, 1,000 rows           the same, id drawn at random
//   reserve+commit, one hot account  each reserve and each commit its own transaction, one statement
//                                    each (ledger.reserve/commit with the pool and a userId)
//   reserve+commit, 1,000 accounts   the same, account drawn at random
//   reserve+commit, one hot team     the same on one team's account, each client a member of the
//                                    team (ledger.reserve with teamId: spend limit row + account)
// The machine is shared and its disk noisy, so each pair of (raw, ledger) is measured ROUNDS times,
// alternating, and the ratio reported is the median of the per-round ratios. One CHECKPOINT after
// setup, none between measurements: a forced checkpoint makes the next few seconds pay a full-page
// image for every index page first touched, which production spreads over its checkpoint interval
// (5 minutes by default); the raw UPDATE touches one page and would not pay it at all.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createPool, createSystemPool, type Db } from '../lib/db/pool';
import { checkLedger } from '../lib/ledger/check';
import * as ledger from '../lib/ledger/ledger';
import { startStack } from '../lib/dev/embedded-stack';
import type { Bench, BenchOptions } from './run';

const ACCOUNTS = 1000;
const WARMUP_MS = 1000;
const ROUNDS = 3;

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
  owner.on('error', () => {}); // idle connections cut when the stack stops
  // Setup through the owner (a throwaway stack); the measured calls on the velro_app login.
  const app: Db = createPool({ connectionString: stack.appDatabaseUrl, max: opts.clients });
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
    // One team whose members are the clients, with plenty of credit and no spend limits.
    const members = users.slice(1, 1 + opts.clients).map((u) => u.id);
    const teamOwner = await owner.connect();
    let teamId: string;
    try {
      await teamOwner.query(`SELECT set_config('app.user_id', $1, false)`, [users[0]!.id]);
      teamId = (await teamOwner.query<{ id: string }>(`SELECT create_team('bench') AS id`)).rows[0]!.id;
      await teamOwner.query(`SELECT set_config('app.user_id', '', false)`);
    } finally {
      teamOwner.release();
    }
    await owner.query(
      `INSERT INTO team_members (team_id, user_id, role) SELECT $1, id, 'member' FROM unnest($2::uuid[]) id`,
      [teamId, members],
    );
    await owner.query(`SELECT ledger_grant_team(gen_random_uuid(), $1, 1000000000, 'bench')`, [teamId]);
    await owner.query('VACUUM ANALYZE');
    await owner.query('CHECKPOINT');

    const deadline = new Date(Date.now() + 24 * 3600 * 1000);
    const pair = async (userId: string, teamId: string | null = null) => {
      const reserve = await ledger.reserve(app, {
        userId,
        teamId,
        id: randomUUID(),
        amount: 1,
        generationId: randomUUID(),
        deadline,
      });
      await ledger.commit(app, { userId, id: randomUUID(), pendingId: reserve.id });
    };
    // Prepared (named) like the ledger's calls, so both sides pay the same per-statement overhead.
    const update = 'UPDATE bench_counter SET n = n + 1 WHERE id = $1';
    const hotUser = users[0]!.id;

    // `raw`: the index of the raw measurement a ledger one is compared with, in the same round.
    const measurements: {
      name: string;
      op: (client: number) => Promise<unknown>;
      raw?: number;
      label?: string;
    }[] = [
      { name: 'raw UPDATE, one hot row', op: () => owner.query({ name: 'raw', text: update, values: [0] }) },
      { name: 'reserve+commit, one hot account', op: () => pair(hotUser), raw: 0, label: 'hot' },
      {
        name: 'raw UPDATE, 1,000 rows',
        op: () => owner.query({ name: 'raw', text: update, values: [pick()] }),
      },
      { name: 'reserve+commit, 1,000 accounts', op: () => pair(users[pick()]!.id), raw: 2, label: 'spread' },
      {
        name: 'reserve+commit, one hot team',
        op: (client) => pair(members[client % members.length]!, teamId),
        raw: 0,
        label: 'hot',
      },
    ];
    const rounds: Result[][] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      opts.log(`  round ${round} of ${ROUNDS}`);
      const results: Result[] = [];
      for (const m of measurements) {
        results.push(await measure(m.name, opts, async (client) => void (await m.op(client))));
      }
      rounds.push(results);
    }

    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // Per round: each ledger measurement / its raw one (hot pairs / raw hot, spread / raw spread).
    const ratios = measurements.map((m, i) =>
      m.raw === undefined ? [] : rounds.map((r) => r[i]!.rate / r[m.raw!]!.rate),
    );
    const rows = measurements.map((m, i) => {
      const rs = rounds.map((r) => r[i]!);
      const ratio =
        m.raw !== undefined
          ? `${median(ratios[i]!).toFixed(2)} × raw ${m.label} ` +
            `(${ratios[i]!.map((x) => x.toFixed(2)).join(', ')})`
          : '';
      return [
        m.name,
        median(rs.map((r) => r.rate)).toFixed(0),
        median(rs.map((r) => r.p50)).toFixed(2),
        median(rs.map((r) => r.p99)).toFixed(2),
        String(rs.reduce((n, r) => n + r.ops, 0)),
        ratio,
      ];
    });
    const header = ['measurement', 'per s', 'p50 ms', 'p99 ms', 'ops', 'ratio: median (each round)'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) =>
      '  ' +
      cells.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    opts.log('');
    opts.log(`  medians over ${ROUNDS} rounds`);
    opts.log(line(header));
    opts.log(line(widths.map((w) => '-'.repeat(w))));
    for (const r of rows) opts.log(line(r));
    const target = median(ratios[1]!);
    opts.log('');
    opts.log(
      `  target: hot-account pairs >= 0.5 × raw hot UPDATEs: ${target.toFixed(2)} -> ${target >= 0.5 ? 'met' : 'MISSED'}`,
    );

    const system = createSystemPool({ connectionString: stack.systemDatabaseUrl, max: 1 });
    const problems = await checkLedger(system).finally(() => system.end());
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
