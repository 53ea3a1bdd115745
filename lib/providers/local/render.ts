// The local provider's renderer: a deterministic picture (PNG) or looping animation (GIF) of a prompt.
// The scene is drawn at random from the prompt and seed (./scene.ts), then painted (./draw.ts).
import { Canvas, drawScene } from './draw';
import { encodeGif } from './gif';
import { PaletteQuantizer } from './palette';
import { encodePng } from './png';
import { createScene } from './scene';

export interface RenderRequest {
  prompt: string;
  seed: number;
  width: number;
  height: number;
}

export interface AnimationRequest extends RenderRequest {
  durationSeconds: number;
  /** Frames per second, 1..24; default 8. */
  fps?: number;
}

export interface RenderedMedia {
  bytes: Buffer;
  contentType: 'image/png' | 'image/gif';
  width: number;
  height: number;
  durationMs?: number;
}

const MIN_SIDE = 16;
const MAX_SIDE = 4096;
const MIN_DURATION_S = 1;
const MAX_DURATION_S = 20;
const DEFAULT_FPS = 8;
const MAX_FPS = 24;
/**
 * GIF stores every frame whole, as LZW-compressed palette indices with no motion prediction, so size and
 * render time grow with pixels × frames. At 320x180 a 5 s, 8 fps clip is ~0.4 MB and ~0.3 s; at the nominal
 * 1280x720 it would be 16 times that (~7 MB, and ~30 MB for 20 s).
 */
const MAX_ANIMATION_SIDE = 320;
/** How many frames feed the shared GIF palette; enough to see every moving shape. */
const PALETTE_SAMPLE_FRAMES = 6;

/** Renders the prompt as a deterministic PNG picture of exactly `width` x `height` pixels. */
export function renderImage(req: RenderRequest): RenderedMedia {
  validateRequest(req);
  const scene = createScene(req.prompt, req.seed);
  const canvas = new Canvas(req.width, req.height);
  drawScene(canvas, scene, 0);
  return {
    bytes: encodePng(canvas.width, canvas.height, canvas.rgba),
    contentType: 'image/png',
    width: req.width,
    height: req.height,
  };
}

/**
 * Renders the prompt as a seamlessly looping animated GIF of round(duration × fps) frames.
 * The nominal size sets the aspect ratio: the output is scaled down (never up) so its longer side is at
 * most 320 px, and the size actually used is reported.
 */
export function renderAnimation(req: AnimationRequest): RenderedMedia {
  validateRequest(req);
  const fps = req.fps ?? DEFAULT_FPS;
  validateAnimation(req.durationSeconds, fps);
  const { width, height } = animationSize(req.width, req.height);
  const scene = createScene(req.prompt, req.seed);
  const frameCount = Math.max(1, Math.round(req.durationSeconds * fps));
  // Motion repeats about every 4 s, and always a whole number of times so the loop has no seam.
  const cycles = Math.max(1, Math.round(req.durationSeconds / 4));
  const renderFrame = (i: number) => {
    const canvas = new Canvas(width, height);
    drawScene(canvas, scene, (i / frameCount) * cycles);
    return canvas.rgba;
  };
  const samples = evenlySpaced(frameCount, PALETTE_SAMPLE_FRAMES).map(renderFrame);
  const quantizer = PaletteQuantizer.fromSamples(samples);
  const frames = Array.from({ length: frameCount }, (_, i) => quantizer.indexFrame(renderFrame(i)));
  const delays = frameDelaysCs(frameCount, fps);
  return {
    bytes: encodeGif(width, height, frames, quantizer.palette, delays),
    contentType: 'image/gif',
    width,
    height,
    durationMs: delays.reduce((sum, d) => sum + d, 0) * 10,
  };
}

function validateRequest(req: RenderRequest): void {
  if (typeof req.prompt !== 'string') throw new TypeError('prompt must be a string');
  if (!Number.isSafeInteger(req.seed)) throw new RangeError(`seed must be a safe integer, got ${req.seed}`);
  for (const [name, value] of [
    ['width', req.width],
    ['height', req.height],
  ] as const) {
    if (!Number.isInteger(value) || value < MIN_SIDE || value > MAX_SIDE) {
      throw new RangeError(`${name} must be an integer between ${MIN_SIDE} and ${MAX_SIDE}, got ${value}`);
    }
  }
}

function validateAnimation(durationSeconds: number, fps: number): void {
  if (
    !Number.isFinite(durationSeconds) ||
    durationSeconds < MIN_DURATION_S ||
    durationSeconds > MAX_DURATION_S
  ) {
    throw new RangeError(
      `durationSeconds must be between ${MIN_DURATION_S} and ${MAX_DURATION_S}, got ${durationSeconds}`,
    );
  }
  if (!Number.isFinite(fps) || fps < 1 || fps > MAX_FPS) {
    throw new RangeError(`fps must be between 1 and ${MAX_FPS}, got ${fps}`);
  }
}

function animationSize(width: number, height: number): { width: number; height: number } {
  const scale = Math.min(1, MAX_ANIMATION_SIDE / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Per-frame delays in centiseconds whose running total stays as close as possible to i / fps seconds. */
function frameDelaysCs(frameCount: number, fps: number): number[] {
  const at = (i: number) => Math.round((i * 100) / fps);
  return Array.from({ length: frameCount }, (_, i) => at(i + 1) - at(i));
}

function evenlySpaced(count: number, wanted: number): number[] {
  const n = Math.min(count, wanted);
  return Array.from({ length: n }, (_, i) => Math.floor((i * count) / n));
}
