import type { Client } from '@temporalio/client';
import type { Db } from '../../lib/db/pool';
import { isTerminal, type GenerationStatus } from '../../lib/generations/status';
import { generationStatuses } from '../../lib/generations/store';
import { generationWorkflowId, progressQuery, type Progress } from '../../workflows/definitions';

export interface GenerationSnapshot {
  id: string;
  status: GenerationStatus;
  stage: string;
  queuePosition: number | null;
  logs: string[];
  error: { code: string; message: string } | null;
  /** Orders snapshots: status changes bump the first part, new provider log lines the second. */
  version: string;
}

/** What the watcher needs: the database (its status reads), Temporal (progress queries), its tick. */
export interface GenerationEventDeps {
  db: Db;
  temporal: Client;
  /** How often the watched generations are read; 500 ms unless given. */
  intervalMs?: number;
}

type Listener = (snapshot: GenerationSnapshot) => void;

const versionParts = (version: string): [number, number] => {
  const [at = 0, logCount = 0] = version.split('-').map(Number);
  return [at, logCount];
};

/** Compares two snapshot versions ("<updated ms>-<log count>"). */
export function newerThan(a: string, b: string): boolean {
  const [a1, a2] = versionParts(a);
  const [b1, b2] = versionParts(b);
  return a1 !== b1 ? a1 > b1 : a2 > b2;
}

/**
 * The log lines of `snapshot` that `previous` did not have yet: by the log count in their versions
 * (the workflow counts every line it keeps), not by text, so a line that genuinely repeats an
 * earlier one is sent again. Without a previous snapshot (a new or resumed stream), all of them.
 */
export function newLogLines(
  previous: GenerationSnapshot | undefined,
  snapshot: GenerationSnapshot,
): string[] {
  if (!previous) return snapshot.logs;
  const added = versionParts(snapshot.version)[1] - versionParts(previous.version)[1];
  if (added <= 0) return [];
  return snapshot.logs.slice(-Math.min(added, snapshot.logs.length));
}

/**
 * Watches the generations that have live event streams: one query for all of them per tick, and
 * one progress query per running generation, however many clients each has. No connection is held
 * between ticks, so a thousand open streams cost what ten do.
 */
export class GenerationEventHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly last = new Map<string, GenerationSnapshot>();
  private readonly db: Db;
  private readonly temporal: Client;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(deps: GenerationEventDeps) {
    this.db = deps.db;
    this.temporal = deps.temporal;
    this.intervalMs = deps.intervalMs ?? 500;
  }

  /** Calls `listener` with the current snapshot at once, then with every change. */
  subscribe(generationId: string, listener: Listener): () => void {
    let set = this.listeners.get(generationId);
    if (!set) this.listeners.set(generationId, (set = new Set()));
    set.add(listener);
    const known = this.last.get(generationId);
    if (known) listener(known);
    this.timer ??= setInterval(() => void this.tick(), this.intervalMs);
    if (!known) void this.tick();
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.listeners.delete(generationId);
        this.last.delete(generationId);
      }
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.listeners.size === 0) return;
    this.ticking = true;
    try {
      // Across users, status fields only: each stream's owner was checked when it was opened.
      const rows = await generationStatuses(this.db, [...this.listeners.keys()]);
      await Promise.all(
        rows.map(async (row) => {
          const progress = isTerminal(row.status) ? undefined : await this.progressOf(row.id);
          const before = this.last.get(row.id);
          const logs = progress?.logs ?? before?.logs ?? [];
          const logCount = progress?.logCount ?? (before ? versionParts(before.version)[1] : 0);
          const snapshot: GenerationSnapshot = {
            id: row.id,
            status: row.status,
            stage: progress && !isTerminal(row.status) ? progress.stage : row.stage,
            queuePosition: progress?.queuePosition ?? null,
            logs,
            error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
            version: `${row.updated_at.getTime()}-${logCount}`,
          };
          if (before && JSON.stringify(before) === JSON.stringify(snapshot)) return;
          this.last.set(row.id, snapshot);
          for (const listener of this.listeners.get(row.id) ?? []) listener(snapshot);
        }),
      );
    } catch {
      // A failed tick is retried at the next one; streams stay open.
    } finally {
      this.ticking = false;
    }
  }

  private async progressOf(generationId: string): Promise<Progress | undefined> {
    try {
      return await this.temporal.workflow.getHandle(generationWorkflowId(generationId)).query(progressQuery);
    } catch {
      return undefined; // closed meanwhile, or no worker to answer: the row is still the truth
    }
  }
}
