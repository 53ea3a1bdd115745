import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { InputImageError } from './decode';
import type { AnimationRequest, RenderedMedia, RenderRequest } from './render';
import type { RenderJob } from './render-worker';

type Pending = { resolve: (m: RenderedMedia) => void; reject: (e: Error) => void };

/**
 * A few worker threads that render local outputs (CPU-bound: ~0.2 s for a 1024² PNG) off the
 * event loop. Threads start on first use and keep the process alive only while they render.
 * Input images travel as their encoded bytes (copied, never the caller's buffer) and are decoded in
 * the thread; an input it cannot decode rejects with an InputImageError.
 */
export class RenderPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly idle: Worker[] = [];
  private readonly queue: RenderJob[] = [];
  private nextId = 1;

  constructor(private readonly size = Math.max(1, Math.min(4, os.availableParallelism() - 1))) {}

  renderImage(req: RenderRequest): Promise<RenderedMedia> {
    return this.run({ id: this.nextId++, kind: 'image', req });
  }

  renderAnimation(req: AnimationRequest): Promise<RenderedMedia> {
    return this.run({ id: this.nextId++, kind: 'animation', req });
  }

  private run(job: RenderJob): Promise<RenderedMedia> {
    return new Promise((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      this.queue.push(job);
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.workers.length < this.size ? this.spawn() : undefined);
      if (!worker) return;
      worker.ref(); // a busy thread keeps the process alive until its answer arrives
      worker.postMessage(this.queue.shift()!);
    }
  }

  private spawn(): Worker {
    // From the sources (tsx, vitest) the thread loads the TypeScript through tsx's require hook;
    // from dist/, the compiled JavaScript.
    const fromSources = __filename.endsWith('.ts');
    const entry = path.join(__dirname, `render-worker.${fromSources ? 'ts' : 'js'}`);
    const code = `${fromSources ? "require('tsx/cjs');" : ''} require(${JSON.stringify(entry)});`;
    const worker = new Worker(code, { eval: true });
    worker.on('message', (msg: { id: number; media?: RenderedMedia; error?: string; badInput?: boolean }) => {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.media) p?.resolve({ ...msg.media, bytes: Buffer.from(msg.media.bytes) });
      else if (msg.badInput) p?.reject(new InputImageError(msg.error ?? 'the input image cannot be used'));
      else p?.reject(new RangeError(msg.error ?? 'render failed'));
      worker.unref(); // an idle thread does not
      this.idle.push(worker);
      this.dispatch();
    });
    worker.on('error', (err) => {
      // A crashed thread fails every job in flight; the next job starts a fresh thread.
      this.workers.splice(this.workers.indexOf(worker), 1);
      for (const [id, p] of this.pending) {
        p.reject(err);
        this.pending.delete(id);
      }
    });
    this.workers.push(worker);
    return worker;
  }
}
