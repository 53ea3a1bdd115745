// Faults between machines on the real cluster (lib/dev/cluster.ts): generations in flight through the
// round-robin proxy while a worker, an API, Temporal and Postgres go down one after the other. Every
// generation must end, be charged or refunded exactly once, and no client may see an error it could
// not act on. `npm run test:cluster`.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../lib/auth/api-keys';
import { startCluster, type Cluster } from '../../lib/dev/cluster';
import { createSystemPool, withSystemTx, type SystemDb } from '../../lib/db/pool';
import { checkLedgerReport } from '../../lib/ledger/check';
import * as ledger from '../../lib/ledger/ledger';
import { formatRecoveryTable, type FaultRecord } from './recovery-table';
import { Traffic, type Answer } from './traffic';

const INITIAL_CREDITS = 1_000_000;
const IN_FLIGHT = 50;
/** How long each fault lasts before the component is started again. */
const HOLD_MS = 5_000;
/** After a fault is healed, how long the system may take to complete a generation again. */
const RECOVERY_TIMEOUT_MS = 120_000;

const CHILD_ENV: NodeJS.ProcessEnv = {
  // Workers bundle the current workflow sources, never a stale dist/ build.
  NODE_ENV: 'development',
  // As `npm run cluster` has them: the local provider's outputs are fetched from loopback.
  WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
  WEBHOOK_ALLOW_HTTP: 'true',
  PROVIDER_OUTPUT_ALLOW_LOOPBACK: 'true',
  // Generations stay in flight across each fault; a fifth fail, so both charge and refund run.
  LOCAL_PROVIDER_LATENCY_MS: '4000',
  LOCAL_PROVIDER_FAILURE_RATE: '0.2',
  // One account makes all the traffic: neither its rate limit nor its concurrency cap is under test.
  RATE_LIMIT_MAX: '1000000',
  CAPACITY_ACCOUNT_MAX_IMAGE: '1000',
  // (info: the cluster waits for the worker's "worker started" line.)
  LOG_LEVEL: 'info',
};

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    // Not vitest's, nor a developer's own stack settings.
    if (/^(VITEST|NODE_ENV$|TEST$|DATABASE_|TEMPORAL_|LOCAL_PROVIDER_|RATE_LIMIT_|CAPACITY_)/.test(name))
      continue;
    env[name] = value;
  }
  return { ...env, ...CHILD_ENV };
}

async function createPayingUser(db: SystemDb): Promise<{ userId: string; apiKey: string }> {
  const key = generateApiKey();
  const userId = await withSystemTx(db, async (tx) => {
    const email = `faults-${randomUUID()}@test.velro`;
    const { rows } = await tx.query<{ id: string }>('SELECT create_user($1, NULL) AS id', [email]);
    const id = rows[0]!.id;
    await tx.query('SELECT create_api_key($1, $2, $3, $4)', [id, 'faults', key.prefix, key.hash]);
    await ledger.grant(tx, { id: randomUUID(), userId: id, amount: INITIAL_CREDITS, reason: 'fault test' });
    return id;
  });
  return { userId, apiKey: key.key };
}

interface Fault {
  name: string;
  /** A dependency every request needs (a 503 `unavailable` is the right answer while it is down). */
  dependency: boolean;
  inject(c: Cluster): Promise<void>;
  heal(c: Cluster): Promise<void>;
}

const FAULTS: Fault[] = [
  {
    name: 'kill -9 worker-1',
    dependency: false,
    inject: (c) => c.workers[0]!.kill('SIGKILL'),
    heal: (c) => c.workers[0]!.start(),
  },
  {
    name: 'kill -9 api-1',
    dependency: false,
    inject: (c) => c.apis[0]!.kill('SIGKILL'),
    heal: (c) => c.apis[0]!.start(),
  },
  {
    name: 'restart Temporal',
    dependency: true,
    inject: (c) => c.temporal.stop(),
    heal: (c) => c.temporal.start(),
  },
  {
    name: 'restart Postgres',
    dependency: true,
    inject: (c) => c.postgres!.stop(),
    heal: (c) => c.postgres!.start(),
  },
];

describe.skipIf(!process.env.VELRO_CLUSTER_TESTS)('the cluster under faults', () => {
  let cluster: Cluster | undefined;
  let system: SystemDb | undefined;
  let dataDir: string;
  let logFile: fs.WriteStream;
  let failed = true;
  /** Processes that died on their own (not the ones a fault kills). */
  const crashes: string[] = [];

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'velro-faults-'));
    logFile = fs.createWriteStream(path.join(dataDir, 'cluster.log'));
    const started = Date.now();
    cluster = await startCluster({
      dataDir,
      port: 0,
      uiPort: false,
      wellKnownPorts: false,
      env: childEnv(),
      log: (component, line) => {
        if (component === 'cluster' && line.includes('exited unexpectedly')) crashes.push(line);
        logFile.write(`${new Date().toISOString()} [${component}] ${line}\n`);
      },
    });
    console.log(`cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s; log: ${dataDir}/cluster.log`);
    system = createSystemPool({ connectionString: cluster.systemDatabaseUrl, max: 2 });
  });

  afterAll(async () => {
    await system?.end();
    await cluster?.stop();
    await new Promise((resolve) => logFile?.end(resolve));
    if (failed) console.log(`kept for inspection: ${dataDir}`);
    else fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('ends every generation, settles each exactly once and answers only errors a client can act on', async () => {
    const c = cluster!;
    const { userId, apiKey } = await createPayingUser(system!);
    const traffic = new Traffic(c.url, apiKey);

    await Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => traffic.submit(`before the faults ${i}`)));
    expect(traffic.generations.size).toBe(IN_FLIGHT);

    // The client: polls every generation, over and over, and submits one more every two seconds.
    let running = true;
    let submitted = 0;
    const poller = (async () => {
      while (running) {
        const round = Date.now();
        await traffic.pollAll();
        await sleep(Math.max(0, 1_000 - (Date.now() - round)));
      }
    })();
    const submitter = (async () => {
      while (running) {
        await traffic.submit(`during the faults ${submitted++}`);
        await sleep(2_000);
      }
    })();

    const records: FaultRecord[] = [];
    await sleep(1_500); // the first fault hits the 50 while they run
    for (const fault of FAULTS) {
      const at = Date.now();
      await fault.inject(c);
      const downAt = Date.now();
      await sleep(HOLD_MS);
      await fault.heal(c);
      const healedAt = Date.now();
      // Recovered once a generation completes after the component is back (or, for a killed replica,
      // once one completes at all after the fault: the other replica carries on).
      const since = fault.dependency ? healedAt : downAt;
      const deadline = Date.now() + RECOVERY_TIMEOUT_MS;
      let completion: number | undefined;
      while (Date.now() < deadline) {
        completion = firstCompletionAfter(traffic, since);
        if (completion !== undefined) break;
        await sleep(250);
      }
      records.push({ name: fault.name, at, downAt, healedAt, completion, answers: [] });
      if (completion === undefined) break;
      await sleep(2_000);
    }
    running = false;
    await submitter;
    await poller;

    // Every generation ends.
    const endDeadline = Date.now() + 180_000;
    while (traffic.unfinished().length && Date.now() < endDeadline) {
      await traffic.pollAll();
      await sleep(1_000);
    }
    const end = Date.now();
    for (const [i, r] of records.entries()) {
      const until = records[i + 1]?.at ?? end;
      r.answers = traffic.answers.filter((a) => a.sentAt >= r.at && a.sentAt < until);
      r.first200 = traffic.answers.find((a) => a.sentAt >= r.downAt && a.status === 200)?.doneAt;
    }
    console.log(formatRecoveryTable(records));
    console.log(statusSummary(traffic.answers));

    expect(records.map((r) => [r.name, r.completion !== undefined])).toEqual(
      FAULTS.map((f) => [f.name, true]),
    );
    expect(traffic.unfinished()).toEqual([]);
    // No API or worker dies of a dependency's outage (one did: pg's unhandled 'error' event).
    expect(crashes).toEqual([]);
    expect(traffic.generations.size).toBe(IN_FLIGHT + submitted);

    // Answers: 2xx, except 503 `unavailable` with Retry-After while a dependency was down (until it
    // recovered), then 409 `idempotency_key_used` for a key whose admission timed out, and the 502 of
    // a POST whose API was killed under it (retried with its key).
    const unexpected = traffic.answers.filter((a) => !acceptable(a, records));
    expect(unexpected).toEqual([]);

    // Each generation charged or refunded exactly once, and the balance to match.
    const { rows } = await system!.query<{ generation_id: string; kinds: string[]; charged: number }>(
      `SELECT generation_id, array_agg(kind ORDER BY kind) AS kinds,
              coalesce(sum(amount) FILTER (WHERE kind = 'commit'), 0) AS charged
         FROM credit_transfers WHERE user_id = $1 AND generation_id IS NOT NULL
        GROUP BY generation_id`,
      [userId],
    );
    const byId = new Map(rows.map((r) => [r.generation_id, r]));
    expect([...byId.keys()].sort()).toEqual([...traffic.generations.keys()].sort());
    const wrong = [...traffic.generations.values()].filter((g) => {
      const kinds = byId.get(g.id)?.kinds.join(',');
      return g.status === 'succeeded' ? kinds !== 'commit,reserve' : kinds !== 'release,reserve';
    });
    expect(wrong.map((g) => ({ ...g, kinds: byId.get(g.id)?.kinds }))).toEqual([]);
    const statuses = [...traffic.generations.values()].map((g) => g.status);
    expect(statuses).toContain('succeeded');
    expect(statuses).toContain('failed');
    const charged = rows.reduce((sum, r) => sum + Number(r.charged), 0);
    const credits = await traffic.call('GET', 'GET /v1/credits', '/v1/credits');
    expect(credits.body).toEqual({ available: INITIAL_CREDITS - charged, reserved: 0, spent: charged });

    const report = await checkLedgerReport(system!);
    expect(report.problems).toEqual([]);
    failed = false;
  });
});

function firstCompletionAfter(traffic: Traffic, since: number): number | undefined {
  let first: number | undefined;
  for (const g of traffic.generations.values())
    if (
      g.completedAt !== undefined &&
      g.completedAt >= since &&
      (first === undefined || g.completedAt < first)
    )
      first = g.completedAt;
  return first;
}

function acceptable(a: Answer, records: FaultRecord[]): boolean {
  if (a.status >= 200 && a.status < 300) return true;
  // A fault's phase runs from the fault until the next one (its client connections reconnect shortly
  // after the first completion, so a few more 503s may follow it). An answer is judged by every phase
  // it was in flight in: a POST sent just before an API is killed gets the 502 of that kill.
  return records.some((r, i) => {
    const until = records[i + 1]?.at ?? Infinity;
    if (a.doneAt < r.at || a.sentAt >= until) return false;
    const fault = FAULTS.find((f) => f.name === r.name)!;
    if (a.status === 503 && a.code === 'unavailable' && a.retryAfter && fault.dependency) return true;
    // A submit that waited out ADMISSION_TIMEOUT_MS was canceled; its key's retry is told to use a
    // new key (Traffic.submit does), and no generation exists under the old one.
    if (a.status === 409 && a.code === 'idempotency_key_used' && fault.dependency) return true;
    return a.status === 502 && a.method === 'POST' && fault.name.includes('api');
  });
}

function statusSummary(answers: Answer[]): string {
  const counts = new Map<string, number>();
  for (const a of answers) {
    const key = `${a.route} ${a.status}${a.code ? ` ${a.code}` : ''}${a.error ? ` (${a.error})` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort()
    .map(([k, n]) => `${String(n).padStart(6)}  ${k}`)
    .join('\n');
}
