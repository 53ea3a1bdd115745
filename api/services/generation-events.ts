import type { Client } from '@temporalio/client';
import { queuePositions, WAITING_STAGE } from '../../lib/capacity/store';
import { withUserTx, type Db } from '../../lib/db/pool';
import { isTerminal, type GenerationStatus } from '../../lib/generations/status';
import { generationStatuses } from '../../lib/generations/store';
import { teamsStillIn } from '../../lib/teams/membership';
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
  /** How often the watchers of team generations are checked to be members still; 2 s unless given. */
  accessIntervalMs?: number;
}

type Listener = (snapshot: GenerationSnapshot) => void;

/** A stream of a team generation: its watcher must stay a member; `revoked` is called when it no longer is. */
export interface TeamWatch {
  userId: string;
  teamId: string;
  revoked(): void;
}

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
 * between ticks, so a thousand open streams cost what ten do. Streams of team generations are
 * re-checked every accessIntervalMs: one transaction per watcher, as that watcher (row-level
 * security's own membership helper, never a definer function reading across users), for all of its
 * streams; a stream whose watcher has left the team is revoked.
 */
export class GenerationEventHub {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly last = new Map<string, GenerationSnapshot>();
  private readonly watches = new Set<TeamWatch>();
  private readonly db: Db;
  private readonly temporal: Client;
  private readonly intervalMs: number;
  private readonly accessIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private checkingAccess = false;
  private accessCheckedAt = Date.now();

  constructor(deps: GenerationEventDeps) {
    this.db = deps.db;
    this.temporal = deps.temporal;
    this.intervalMs = deps.intervalMs ?? 500;
    this.accessIntervalMs = deps.accessIntervalMs ?? 2000;
  }

  /**
   * Calls `listener` with the current snapshot at once, then with every change. `watch`: the
   * stream is of a team generation, to end (watch.revoked) once its watcher is no longer a member.
   */
  subscribe(generationId: string, listener: Listener, watch?: TeamWatch): () => void {
    let set = this.listeners.get(generationId);
    if (!set) this.listeners.set(generationId, (set = new Set()));
    set.add(listener);
    if (watch) this.watches.add(watch);
    const known = this.last.get(generationId);
    if (known) listener(known);
    this.timer ??= setInterval(() => void this.tick(), this.intervalMs);
    if (!known) void this.tick();
    return () => {
      if (watch) this.watches.delete(watch);
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
    this.watches.clear();
  }

  private async tick(): Promise<void> {
    if (Date.now() - this.accessCheckedAt >= this.accessIntervalMs) void this.checkAccess();
    if (this.ticking || this.listeners.size === 0) return;
    this.ticking = true;
    try {
      // Across users, status fields only: each stream's owner was checked when it was opened.
      const rows = await generationStatuses(this.db, [...this.listeners.keys()]);
      // Where the waiting ones stand in their provider's queue, live (their workflows only know
      // where they stood when they last looked).
      const positions = await queuePositions(
        this.db,
        rows.filter((r) => r.stage === WAITING_STAGE).map((r) => r.id),
      );
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
            queuePosition: positions.get(row.id) ?? progress?.queuePosition ?? null,
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

  /** Revokes the team streams whose watcher is no longer a member of the generation's team. */
  private async checkAccess(): Promise<void> {
    if (this.checkingAccess) return;
    this.checkingAccess = true;
    this.accessCheckedAt = Date.now();
    try {
      const byWatcher = new Map<string, TeamWatch[]>();
      for (const w of this.watches) byWatcher.set(w.userId, [...(byWatcher.get(w.userId) ?? []), w]);
      await Promise.all(
        [...byWatcher].map(async ([userId, watches]) => {
          try {
            const teams = [...new Set(watches.map((w) => w.teamId))];
            const still = await withUserTx(this.db, userId, (tx) => teamsStillIn(tx, teams));
            for (const w of watches) {
              if (still.has(w.teamId) || !this.watches.has(w)) continue;
              this.watches.delete(w);
              w.revoked();
            }
          } catch {
            // Checked again at the next interval; the streams stay open meanwhile.
          }
        }),
      );
    } finally {
      this.checkingAccess = false;
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
