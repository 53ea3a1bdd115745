// `npm start`: Postgres, Temporal, one worker and the API on one machine, one log stream.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDemoUser } from '../lib/dev/demo-user';
import { loadConfig, publicUrl } from '../lib/config';
import { formatLogLine } from '../lib/dev/log-format';
import { createSystemDb } from '../lib/wiring/from-config';
import { startStack } from '../lib/dev/embedded-stack';
import { removeStackInfo, writeStackInfo } from '../lib/dev/stack-file';

const ROOT = path.resolve(__dirname, '..');
/** Turned on for the worker and the API that `npm start` runs, unless set in its environment. */
const DEV_RELAXATIONS = [
  'WEBHOOK_ALLOW_PRIVATE_URLS',
  'WEBHOOK_ALLOW_HTTP',
  'PROVIDER_OUTPUT_ALLOW_LOOPBACK',
];
const print = (component: string, line: string) =>
  process.stdout.write(`${formatLogLine(component, line)}\n`);

function startChild(name: string, entry: string, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => print(name, line));
  }
  return child;
}

function stopChild(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function waitForHealth(url: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      if ((await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`the API did not answer at ${url}/health within ${timeoutMs / 1000} s`);
}

async function main() {
  const config = loadConfig();
  await fs.mkdir(config.dataDir, { recursive: true });
  const stack = await startStack({
    dataDir: config.dataDir,
    databaseUrl: config.DATABASE_URL,
    temporalAddress: config.TEMPORAL_ADDRESS,
    namespace: config.TEMPORAL_NAMESPACE,
    wellKnownPorts: true,
    signupCredits: config.SIGNUP_CREDITS,
    uiPort: config.TEMPORAL_ADDRESS ? false : config.TEMPORAL_UI_PORT,
    log: (component, line) => {
      if (component !== 'postgres' || /ERROR|FATAL|PANIC/.test(line)) print(component, line);
    },
  });
  await writeStackInfo(config.dataDir, {
    appDatabaseUrl: stack.appDatabaseUrl,
    systemDatabaseUrl: stack.systemDatabaseUrl,
    temporalAddress: stack.temporalAddress,
    pid: process.pid,
  });

  const db = createSystemDb(config, stack.systemDatabaseUrl, 'velro-launcher');
  const demo = await ensureDemoUser(db, config.dataDir);
  await db.end();

  // Each child gets only its own logins, never the owner's: the stack has migrated already.
  const {
    DATABASE_URL: _owner,
    DATABASE_APP_URL: _app,
    DATABASE_SYSTEM_URL: _system,
    ...parent
  } = process.env;
  const env: NodeJS.ProcessEnv = {
    ...parent,
    DATABASE_APP_URL: stack.appDatabaseUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
  };
  // Local receivers and local fake providers work under `npm start`; everywhere else these stay
  // off unless set. What the user set (even to false) wins.
  const childEnv: NodeJS.ProcessEnv = env;
  for (const name of DEV_RELAXATIONS) if (!childEnv[name]?.trim()) childEnv[name] = 'true';
  const children = [
    startChild('worker', 'worker/main.ts', { ...env, DATABASE_SYSTEM_URL: stack.systemDatabaseUrl }),
    startChild('api', 'api/server.ts', env),
  ];

  let stopping = false;
  const shutdown = async (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    print('stack', `${reason}: stopping`);
    await Promise.all(children.map((c) => stopChild(c)));
    await stack.stop();
    await removeStackInfo(config.dataDir);
    print('stack', 'stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  for (const [i, child] of children.entries()) {
    child.once('exit', (code) => void shutdown(`${i === 0 ? 'worker' : 'api'} exited with ${code}`, 1));
  }

  const apiUrl = publicUrl(config);
  await waitForHealth(`http://127.0.0.1:${config.PORT}`, 60_000);
  const banner = [
    '',
    'Velro is running.',
    `  API          ${apiUrl}`,
    `  API docs     ${apiUrl}/docs`,
    `  Temporal UI  ${stack.temporalUiUrl ?? '(external Temporal: see its own UI)'}`,
    `  Demo user    ${demo.email} (key in ${path.join(config.dataDir, 'demo-api-key')})`,
    `  Demo key     ${demo.apiKey}`,
    '',
    `  curl -H "Authorization: Bearer ${demo.apiKey}" ${apiUrl}/v1/credits`,
    '',
    'Ctrl-C stops everything; the next start reuses the data.',
    '',
  ];
  process.stdout.write(`${banner.join('\n')}\n`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
