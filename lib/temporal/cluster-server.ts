// Development only: temporal-server on the cluster's Postgres (SQL visibility), then its namespace
// and Velro's search attributes, both idempotent.
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { managedProcess, type ManagedProcess } from '../dev/managed-process';
import { ensureSearchAttributes } from './register-search-attributes';

const READY_TIMEOUT_MS = 90_000;
const RPC_TIMEOUT_MS = 5_000;
/** gRPC status ALREADY_EXISTS (@grpc/grpc-js is not a direct dependency). */
const ALREADY_EXISTS = 6;
/** How long a closed workflow stays visible in the namespace (the dev server keeps 1 day). */
const RETENTION = '7 days';

export interface TemporalServerProcessOptions {
  serverBin: string;
  configFile: string;
  address: string;
  log: (name: string, line: string) => void;
  onUnexpectedExit?: (name: string, how: string) => void;
}

/** The server as a restartable child; `start()` resolves when its frontend answers. */
export function temporalServerProcess(opts: TemporalServerProcessOptions): ManagedProcess {
  return managedProcess({
    name: 'temporal',
    command: opts.serverBin,
    args: ['--config-file', opts.configFile, '--allow-no-auth', 'start'],
    env: process.env,
    log: opts.log,
    onUnexpectedExit: opts.onUnexpectedExit,
    stopGraceMs: 20_000,
    ready: () => untilAnswers(opts.address),
  });
}

async function untilAnswers(address: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      await withConnection(address, (c) =>
        c.withDeadline(Date.now() + RPC_TIMEOUT_MS, () => c.workflowService.getSystemInfo({})),
      );
      return;
    } catch (err) {
      lastError = err;
      await sleep(300);
    }
  }
  throw new Error(
    `temporal-server did not answer at ${address} within ${READY_TIMEOUT_MS / 1000} s: ${String(lastError)}`,
  );
}

/**
 * Registers `namespace` (ALREADY_EXISTS is fine), waits until the frontend's namespace cache knows
 * it (a new namespace is unknown to it for up to ~10 s), then makes sure Velro's search attributes exist.
 */
export async function ensureNamespace(
  address: string,
  namespace: string,
  log: (line: string) => void,
): Promise<{ created: boolean; addedSearchAttributes: string[] }> {
  return withConnection(address, async (connection) => {
    let created = false;
    try {
      await connection.withDeadline(Date.now() + RPC_TIMEOUT_MS, () =>
        connection.workflowService.registerNamespace({
          namespace,
          workflowExecutionRetentionPeriod: msToTs(RETENTION),
        }),
      );
      created = true;
      log(`registered namespace ${namespace}`);
    } catch (err) {
      if ((err as { code?: number }).code !== ALREADY_EXISTS) throw err;
    }
    await untilNamespaceServes(connection, namespace);
    const { added } = await ensureSearchAttributes(connection, namespace);
    if (added.length) log(`added search attributes ${added.join(', ')} to ${namespace}`);
    return { created, addedSearchAttributes: added };
  });
}

async function untilNamespaceServes(connection: Connection, namespace: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      // Goes through the namespace cache, unlike describeNamespace.
      await connection.withDeadline(Date.now() + RPC_TIMEOUT_MS, () =>
        connection.workflowService.countWorkflowExecutions({ namespace }),
      );
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`namespace ${namespace} is not served after 30 s: ${String(err)}`);
      await sleep(500);
    }
  }
}

async function withConnection<T>(address: string, fn: (c: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address, connectTimeout: RPC_TIMEOUT_MS });
  try {
    return await fn(connection);
  } finally {
    await connection.close();
  }
}
