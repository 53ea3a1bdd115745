// The local provider's renderer: a deterministic picture (PNG) or looping animation (GIF) of a prompt.
// The scene is drawn at random from the prompt and seed (./scene.ts), then painted (./draw.ts). Given an
// input image, the picture starts from it (./picture.ts) and the scene shows only where it is transparent.
import { decodeImage, type DecodedImage } from './decode';
import { Canvas, drawBackground, drawCaption, drawScene } from './draw';
import { encodeGif } from './gif';
import { PaletteQuantizer } from './palette';
import { containRect, coverRect, Picture, type Rect } from './picture';
import { encodePng } from './png';
import { clamp01, createScene, smooth, type Rgb, type Scene } from './scene';

export interface RenderRequest {
  prompt: string;
  seed: number;
  width: number;
  height: number;
  /** PNG or JPEG bytes the output starts from (an edit, an image prompt, the first frame of a video). */
  image?: Uint8Array;
  /** Inputs with more pixels are refused before they are decoded; default 40 M. */
  maxInputPixels?: number;
}

export interface AnimationRequest extends RenderRequest {
  durationSeconds: number;
  /** Frames per second, 1..24; default 8. */
  fps?: number;
  /** With `image`: the picture the animation cross-fades to by its last frame. */
  endImage?: Uint8Array;
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
const DEFAULT_MAX_INPUT_PIXELS = 40_000_000;
/** How much of the prompt's colour is laid over an input: enough to see, little enough to keep the input's. */
const INPUT_TINT = 0.12;
/** An image-to-video animation ends this much closer in than it starts. */
const INPUT_ZOOM = 1.3;

/** Renders the prompt as a deterministic PNG picture of exactly `width` x `height` pixels. */
export function renderImage(req: RenderRequest): RenderedMedia {
  validateRequest(req);
  const scene = createScene(req.prompt, req.seed);
  const canvas = new Canvas(req.width, req.height);
  if (req.image) {
    const image = decodeImage(req.image, { maxPixels: req.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS });
    const frame = containRect(image, req.width, req.height);
    drawBackground(canvas, scene, 0);
    Picture.prepare(image, frame.w / image.width).draw(canvas, wholeOf(image), frame);
    finishOverInput(canvas, scene);
  } else {
    drawScene(canvas, scene, 0);
  }
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
 * With an input image it animates that instead, and does not loop: the view zooms from the whole frame
 * (the input cropped to fill it) towards a point picked by the seed, cross-fading into `endImage` if given.
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
  const renderFrame = req.image
    ? inputFrames(req, scene, frameCount, cycles, width, height)
    : (i: number) => {
        const canvas = new Canvas(width, height);
        drawScene(canvas, scene, (i / frameCount) * cycles);
        return canvas.rgba;
      };
  const sampled = evenlySpaced(frameCount, PALETTE_SAMPLE_FRAMES);
  // An input animation does not loop back: its last frame (a cross-fade's end image) needs its colours.
  if (req.image && sampled.at(-1) !== frameCount - 1) sampled.push(frameCount - 1);
  const samples = sampled.map(renderFrame);
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

/** Frame `i` of an image-to-video animation (see renderAnimation). */
function inputFrames(
  req: AnimationRequest,
  scene: Scene,
  frameCount: number,
  cycles: number,
  width: number,
  height: number,
): (i: number) => Uint8Array {
  const maxPixels = req.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  const start = decodeImage(req.image!, { maxPixels });
  const end = req.endImage ? decodeImage(req.endImage, { maxPixels }) : undefined;
  const full: Rect = { x: 0, y: 0, w: width, h: height };
  const startCover = coverRect(start, width, height);
  const startPicture = Picture.prepare(start, width / startCover.w);
  const endCover = end && coverRect(end, width, height);
  const endPicture = end && Picture.prepare(end, width / endCover!.w);
  return (i) => {
    const t = frameCount > 1 ? i / (frameCount - 1) : 0;
    const canvas = new Canvas(width, height);
    drawBackground(canvas, scene, (i / frameCount) * cycles);
    startPicture.draw(canvas, zoomedView(start, startCover, scene.focus, smooth(t)), full);
    if (endPicture) endPicture.draw(canvas, endCover!, full, smooth(clamp01((t - 0.5) / 0.5)));
    finishOverInput(canvas, scene);
    return canvas.rgba;
  };
}

/** The part of `cover` shown at progress `p` (0..1): it shrinks by INPUT_ZOOM and slides towards `focus`. */
function zoomedView(image: DecodedImage, cover: Rect, focus: { x: number; y: number }, p: number): Rect {
  const zoom = 1 + (INPUT_ZOOM - 1) * p;
  const w = cover.w / zoom;
  const h = cover.h / zoom;
  const cx = cover.x + cover.w / 2 + (focus.x * image.width - (cover.x + cover.w / 2)) * p;
  const cy = cover.y + cover.h / 2 + (focus.y * image.height - (cover.y + cover.h / 2)) * p;
  const x = Math.min(Math.max(cx - w / 2, cover.x), cover.x + cover.w - w);
  const y = Math.min(Math.max(cy - h / 2, cover.y), cover.y + cover.h - h);
  return { x, y, w, h };
}

function wholeOf(image: DecodedImage): Rect {
  return { x: 0, y: 0, w: image.width, h: image.height };
}

/** The prompt's mark over an input: a light wash of its colour, and its caption. */
function finishOverInput(canvas: Canvas, scene: Scene): void {
  tint(canvas, scene.skyHorizon, INPUT_TINT);
  drawCaption(canvas, scene.caption);
}

function tint(canvas: Canvas, color: Rgb, alpha: number): void {
  const px = canvas.rgba;
  for (let i = 0; i < px.length; i += 4) {
    px[i] = px[i]! + (color[0] - px[i]!) * alpha;
    px[i + 1] = px[i + 1]! + (color[1] - px[i + 1]!) * alpha;
    px[i + 2] = px[i + 2]! + (color[2] - px[i + 2]!) * alpha;
  }
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
