import type { Client } from '@temporalio/client';
import type { Db } from '../../lib/db/pool';
import { generationWorkflowId, progressQuery, type Progress } from '../../workflows/definitions';

export interface GenerationSnapshot {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
  stage: string;
  queuePosition: number | null;
  logs: string[];
  error: { code: string; message: string } | null;
  /** Orders snapshots: status changes bump the first part, new provider log lines the second. */
  version: string;
}

type Listener = (snapshot: GenerationSnapshot) => void;

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
export const isTerminal = (s: GenerationSnapshot) => TERMINAL.has(s.status);

/** Compares two snapshot versions ("<updated ms>-<log count>"). */
export function newerThan(a: string, b: string): boolean {
  const [a1 = 0, a2 = 0] = a.split('-').map(Number);
  const [b1 = 0, b2 = 0] = b.split('-').map(Number);
  return a1 !== b1 ? a1 > b1 : a2 > b2;
}

/**
 * Watches the generations that have live event streams: one query for all of them per tick, and
 * one progress query per running generation, however many clients each has. No connection is held
 * between ticks, so a thousand open streams cost what ten do.
 */
export class GenerationEventHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly last = new Map<string, GenerationSnapshot>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(
    private readonly db: Db,
    private readonly temporal: Client,
    private readonly intervalMs = 500,
  ) {}

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
      const ids = [...this.listeners.keys()];
      // Across users, status fields only: each stream's owner was checked when it was opened.
      const { rows } = await this.db.query<{
        id: string;
        status: GenerationSnapshot['status'];
        stage: string;
        error_code: string | null;
        error_message: string | null;
        updated_at: Date;
      }>(`SELECT id, status, stage, error_code, error_message, updated_at FROM generation_statuses($1)`, [
        ids,
      ]);
      await Promise.all(
        rows.map(async (row) => {
          const progress = TERMINAL.has(row.status) ? undefined : await this.progressOf(row.id);
          const before = this.last.get(row.id);
          const logs = progress?.logs ?? before?.logs ?? [];
          const logCount = progress?.logCount ?? Number(before?.version.split('-')[1] ?? 0);
          const snapshot: GenerationSnapshot = {
            id: row.id,
            status: row.status,
            stage: progress && !TERMINAL.has(row.status) ? progress.stage : row.stage,
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
