// Runs in a worker thread: renders one request per message, so the process' event loop (API
// requests, workflow tasks, heartbeats) never waits behind a render.
import { parentPort } from 'node:worker_threads';
import { InputImageError } from './decode';
import { renderAnimation, renderImage, type AnimationRequest, type RenderRequest } from './render';

export type RenderJob =
  | { id: number; kind: 'image'; req: RenderRequest }
  | { id: number; kind: 'animation'; req: AnimationRequest };

parentPort?.on('message', (job: RenderJob) => {
  try {
    const media = job.kind === 'animation' ? renderAnimation(job.req) : renderImage(job.req);
    parentPort!.postMessage({ id: job.id, media });
  } catch (err) {
    parentPort!.postMessage({
      id: job.id,
      error: err instanceof Error ? err.message : String(err),
      badInput: err instanceof InputImageError,
    });
  }
});
