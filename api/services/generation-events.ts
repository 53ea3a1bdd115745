import type { Client } from '@temporalio/client';
import { queuePositions, WAITING_STAGE } from '../../lib/capacity/store';
import { withUserTx, type Db } from '../../lib/db/pool';
import { isTerminal, type GenerationStatus } from '../../lib/generations/status';
import { generationStatuses, type GenerationStatusRow as StatusRow } from '../../lib/generations/store';
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
  /** How often at most a running generation's workflow is asked for its logs; 1 s unless given. */
  progressIntervalMs?: number;
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

/** Progress queries one API process makes per second at most, over all the generations it watches. */
const PROGRESS_QUERIES_PER_SECOND = 40;

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
  /** Each watched generation's latest status row (and live queue position) and workflow progress. */
  private readonly rows = new Map<string, { row: StatusRow; position: number | null }>();
  private readonly progress = new Map<string, Progress>();
  private readonly querying = new Set<string>();
  private readonly queriedAt = new Map<string, number>();
  /** Watched generations whose workflows have logs to tell (running, not waiting for a slot). */
  private running = 0;
  private readonly watches = new Set<TeamWatch>();
  private readonly db: Db;
  private readonly temporal: Client;
  private readonly intervalMs: number;
  private readonly progressIntervalMs: number;
  private readonly accessIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private checkingAccess = false;
  private accessCheckedAt = Date.now();

  constructor(deps: GenerationEventDeps) {
    this.db = deps.db;
    this.temporal = deps.temporal;
    this.intervalMs = deps.intervalMs ?? 500;
    this.progressIntervalMs = deps.progressIntervalMs ?? 1000;
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
        this.rows.delete(generationId);
        this.progress.delete(generationId);
        this.queriedAt.delete(generationId);
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
    this.rows.clear();
    this.progress.clear();
    this.queriedAt.clear();
  }

  /**
   * Reads every watched generation's status row and publishes what changed. Progress queries run
   * beside it, one at a time per generation: a slow one (its worker busy) delays only that
   * generation's logs, never another's status or anyone's terminal event.
   */
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
      this.running = rows.filter((r) => !isTerminal(r.status) && r.stage !== WAITING_STAGE).length;
      for (const row of rows) {
        this.rows.set(row.id, { row, position: positions.get(row.id) ?? null });
        this.publish(row.id);
        // Waiting for a slot, a workflow has no logs to tell and its position comes from above.
        if (!isTerminal(row.status) && row.stage !== WAITING_STAGE) void this.refreshProgress(row.id);
      }
    } catch {
      // A failed tick is retried at the next one; streams stay open.
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Asks the workflow for its progress, unless a query of it is still out or was made less than
   * progressIntervalMs ago (each query is a round trip to Temporal and to a worker); then publishes.
   */
  private async refreshProgress(generationId: string): Promise<void> {
    const now = Date.now();
    // A budget of queries per second for the whole process: with many running generations
    // watched, each is asked less often (its logs come later; its status and end never do).
    const interval = Math.max(this.progressIntervalMs, (this.running * 1000) / PROGRESS_QUERIES_PER_SECOND);
    if (this.querying.has(generationId) || now - (this.queriedAt.get(generationId) ?? 0) < interval) return;
    this.queriedAt.set(generationId, now);
    this.querying.add(generationId);
    try {
      const progress = await this.progressOf(generationId);
      // Unanswered (closed meanwhile, or no worker): the row is the truth until the next answer.
      if (progress) this.progress.set(generationId, progress);
      else this.progress.delete(generationId);
      if (this.listeners.has(generationId)) this.publish(generationId);
    } finally {
      this.querying.delete(generationId);
    }
  }

  /** Sends the generation's snapshot, from its latest row and progress, to its listeners if it changed. */
  private publish(generationId: string): void {
    const latest = this.rows.get(generationId);
    if (!latest) return;
    const { row, position } = latest;
    const terminal = isTerminal(row.status);
    const progress = terminal ? undefined : this.progress.get(generationId);
    const before = this.last.get(generationId);
    const logs = progress?.logs ?? before?.logs ?? [];
    const logCount = progress?.logCount ?? (before ? versionParts(before.version)[1] : 0);
    const snapshot: GenerationSnapshot = {
      id: row.id,
      status: row.status,
      stage: progress ? progress.stage : row.stage,
      queuePosition: position ?? progress?.queuePosition ?? null,
      logs,
      error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
      version: `${row.updated_at.getTime()}-${logCount}`,
    };
    if (before && JSON.stringify(before) === JSON.stringify(snapshot)) return;
    this.last.set(generationId, snapshot);
    for (const listener of this.listeners.get(generationId) ?? []) listener(snapshot);
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
