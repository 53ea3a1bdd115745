import type { Client } from '@temporalio/client';
import type { Db } from '../db/pool';

/** How long each dependency has to answer. */
const CHECK_TIMEOUT_MS = 2000;

export type CheckResult = 'ok' | 'failed';

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

/**
 * Whether Postgres and Temporal each answer within CHECK_TIMEOUT_MS, checked at once. The reason of
 * a failure goes to `onFailure` only (the readiness endpoint is public: it says ok or failed).
 */
export async function checkDependencies(
  deps: { db: Db; temporal: Client },
  onFailure: (check: string, err: unknown) => void,
): Promise<{ postgres: CheckResult; temporal: CheckResult }> {
  const check = (name: string, p: () => Promise<unknown>) =>
    withTimeout(Promise.resolve().then(p), CHECK_TIMEOUT_MS).then(
      () => 'ok' as const,
      (err: unknown) => {
        onFailure(name, err);
        return 'failed' as const;
      },
    );
  const [postgres, temporal] = await Promise.all([
    check('postgres', () => deps.db.query('SELECT 1')),
    check('temporal', () => deps.temporal.workflowService.getSystemInfo({})),
  ]);
  return { postgres, temporal };
}
