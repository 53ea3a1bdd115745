import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { buildApp, type App } from '../../api/app';
import { generateApiKey } from '../../lib/auth/api-keys';
import { loadConfig, type Config } from '../../lib/config';
import { createSystemPool, withSystemTx, type Db, type SystemDb } from '../../lib/db/pool';
import * as ledger from '../../lib/ledger/ledger';
import { createDb, createProviders, createStorage } from '../../lib/wiring/from-config';
import { activityDeps, createWorker } from '../../worker/create-worker';
import { signalCapacityGrantedOf, stoppedGenerationsOf, workflowStateOf } from '../../worker/workflow-state';
import type { ActivityDeps } from '../../activities';
import type { TestStack } from './global-setup';

// Workers in tests report only problems.
let runtimeInstalled = false;
function quietRuntime() {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  runtimeInstalled = true;
}

export function testStack(): TestStack {
  const stack = inject('stack');
  if (!stack) throw new Error('this test needs the test stack (unset VELRO_TEST_NO_INFRA)');
  return stack;
}

/** Configuration as the service would parse it, on the test stack, with a task queue of its own. */
export function testConfig(env: Record<string, string> = {}): Config {
  const stack = testStack();
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_APP_URL: stack.appDatabaseUrl,
    DATABASE_SYSTEM_URL: stack.systemDatabaseUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    VELRO_DATA_DIR: path.join(stack.dataDir, 'service'),
    TEMPORAL_TASK_QUEUE: `test-${randomUUID()}`,
    LOG_LEVEL: 'silent',
    // Tests receive webhooks and fake providers' outputs locally; the defaults are strict.
    WEBHOOK_ALLOW_PRIVATE_URLS: 'true',
    WEBHOOK_ALLOW_HTTP: 'true',
    PROVIDER_OUTPUT_ALLOW_LOOPBACK: 'true',
    ...env,
  });
}

/** A pool on the velro_app login, as the API and worker have. */
export function testDb(config: Config): Db {
  return createDb(config, config.DATABASE_APP_URL!, 'velro-test');
}

let system: SystemDb | undefined;
/** One pool per test file on the velro_system login, for setup and checks across users. */
export function systemDb(): SystemDb {
  system ??= createSystemPool({
    connectionString: testStack().systemDatabaseUrl,
    max: 4,
    applicationName: 'velro-test-system',
    allowExitOnIdle: true,
  });
  return system;
}

/** A new user with an API key, optionally granted credits (through the velro_system login). */
export async function createUser(_db: Db, credits = 0, role: 'user' | 'admin' = 'user') {
  const email = `user-${randomUUID()}@test.velro`;
  const key = generateApiKey();
  const userId = await withSystemTx(systemDb(), async (tx) => {
    const { rows } = await tx.query<{ id: string }>('SELECT create_user($1, NULL, $2) AS id', [email, role]);
    const id = rows[0]!.id;
    await tx.query('SELECT create_api_key($1, $2, $3, $4)', [id, 'test', key.prefix, key.hash]);
    if (credits > 0)
      await ledger.grant(tx, { id: randomUUID(), userId: id, amount: credits, reason: 'test credits' });
    return id;
  });
  return { userId, email, apiKey: key.key, auth: { authorization: `Bearer ${key.key}` } };
}

export interface ApiHarness {
  config: Config;
  db: Db;
  /** The velro_system login on the harness's database (systemDb() unless DATABASE_SYSTEM_URL says otherwise). */
  systemDb: SystemDb;
  app: App;
  temporal: Client;
  stop(): Promise<void>;
}

export interface Harness extends ApiHarness {
  worker: Worker;
}

const setSignupCredits = (n: number) =>
  systemDb().query('UPDATE velro_settings SET signup_credits = $1, updated_at = now()', [n]);

/** The API (called through `inject`) on the test stack, with `env` applied to its configuration. */
export async function startApi(env: Record<string, string> = {}): Promise<ApiHarness> {
  const stack = testStack();
  const config = testConfig(env);
  const db = testDb(config);
  const ownSystem = config.DATABASE_SYSTEM_URL !== stack.systemDatabaseUrl;
  const sys = ownSystem
    ? createSystemPool({ connectionString: config.DATABASE_SYSTEM_URL!, max: 4 })
    : systemDb();
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const app = await buildApp({
    config,
    db,
    temporal,
    storage: createStorage(config),
    assetSigningKey: Buffer.alloc(32, 7),
  });
  // SIGNUP_CREDITS is the provisioning step's to write (velro_settings), not the API's: do it here
  // for the life of this harness.
  const signupCredits = env.SIGNUP_CREDITS === undefined ? undefined : config.SIGNUP_CREDITS;
  if (signupCredits !== undefined) await setSignupCredits(signupCredits);
  return {
    config,
    db,
    systemDb: sys,
    app,
    temporal,
    async stop() {
      await app.close();
      await connection.close();
      await db.end();
      if (ownSystem) await sys.end();
      if (signupCredits !== undefined) await setSignupCredits(0);
    },
  };
}

/**
 * The API plus an in-process worker on the real Temporal server, sharing one configuration
 * (e.g. the local provider's latency from `env`).
 */
export async function startHarness(
  env: Record<string, string> = {},
  depOverrides: Partial<ActivityDeps> = {},
): Promise<Harness> {
  quietRuntime();
  const api = await startApi(env);
  const { config, db, temporal, systemDb: sys } = api;
  const nativeConnection = await NativeConnection.connect({ address: testStack().temporalAddress });
  const storage = createStorage(config);
  const worker = await createWorker({
    config,
    connection: nativeConnection,
    workflowBundlePath: testStack().workflowBundlePath,
    deps: {
      ...activityDeps(config, {
        db,
        systemDb: sys,
        storage,
        providers: createProviders(config, storage),
        workflowState: workflowStateOf(temporal),
        stoppedGenerations: stoppedGenerationsOf(temporal),
        signalGranted: signalCapacityGrantedOf(temporal),
      }),
      ...depOverrides,
    },
  });
  const running = worker.run();
  return {
    ...api,
    worker,
    async stop() {
      worker.shutdown();
      await running;
      await nativeConnection.close();
      await api.stop();
    },
  };
}

/** Polls `fn` until `done` says so, or fails after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (done(value)) return value;
    if (Date.now() > until)
      throw new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Submits a generation through the API and expects 202; its id. */
export async function submitGeneration(
  app: App,
  auth: Record<string, string>,
  payload: { model: string; input: Record<string, unknown> } & Record<string, unknown>,
): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/generations', headers: auth, payload });
  if (res.statusCode !== 202) throw new Error(`submit answered ${res.statusCode}: ${res.body}`);
  return res.json().id as string;
}
