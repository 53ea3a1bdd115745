// The baselines' worker, in its own process as Velro's is (bench/generations-processes.ts starts it):
// `node --import tsx bench/baseline-worker.ts` with BENCH_TEMPORAL_ADDRESS, BENCH_DATABASE_URL,
// BENCH_BUNDLE (the bundle of bench/baseline-workflow.ts) and BENCH_POOL_MAX; prints `baseline worker
// started`, drains on SIGTERM.
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { Pool } from 'pg';
import { BASELINE_TASK_QUEUE, baselineActivities } from './baseline-activity';

async function main() {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const pool = new Pool({
    connectionString: process.env.BENCH_DATABASE_URL,
    max: Number(process.env.BENCH_POOL_MAX ?? 10),
    application_name: 'velro-bench-baseline',
  });
  const connection = await NativeConnection.connect({ address: process.env.BENCH_TEMPORAL_ADDRESS! });
  const worker = await Worker.create({
    connection,
    taskQueue: BASELINE_TASK_QUEUE,
    workflowBundle: { codePath: process.env.BENCH_BUNDLE! },
    activities: baselineActivities(pool),
  });
  console.log('baseline worker started');
  await worker.run();
  await connection.close();
  await pool.end();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
