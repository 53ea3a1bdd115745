import { createHash } from 'node:crypto';
import { encodeGif, PaletteQuantizer } from './gif';
import { encodePng } from './png';

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
const CAPTION_CHARS = 24;

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

// ---------------------------------------------------------------------------------------------------------
// Scene: everything random is drawn here, once, from the hash; drawing is then a pure function of time.

type Rgb = readonly [number, number, number];

interface Shape {
  kind: 'circle' | 'ring' | 'rect';
  /** Centre, as fractions of width and height. */
  x: number;
  y: number;
  /** Radius (half side for rectangles) as a fraction of the shorter side. */
  size: number;
  aspect: number;
  color: Rgb;
  alpha: number;
  /** Orbit radii (fractions of the shorter side), orbits per motion cycle (signed) and starting angle. */
  orbitX: number;
  orbitY: number;
  speed: number;
  phase: number;
}

interface Ridge {
  heights: number[]; // top of the ridge as a fraction of image height, at evenly spaced control points
  color: Rgb;
  baseColor: Rgb; // colour at the bottom of the image
}

interface Scene {
  skyTop: Rgb;
  skyHorizon: Rgb;
  horizon: number;
  cloudColor: Rgb;
  cloudCover: number;
  cloudOctaves: NoiseGrid[];
  sun: { x: number; y: number; r: number; color: Rgb; glow: Rgb };
  ridges: Ridge[];
  shapes: Shape[];
  caption: string;
}

function createScene(prompt: string, seed: number): Scene {
  const rng = new Rng(createHash('sha256').update(`${seed}:${prompt}`).digest());
  const hue = rng.range(0, 360);
  const accentHue = hue + rng.pick([120, 150, 180, 210, 240]);
  const night = rng.next() < 0.3;
  const skyTop = hsl(hue, rng.range(0.45, 0.8), night ? rng.range(0.06, 0.14) : rng.range(0.28, 0.48));
  const skyHorizon = hsl(
    hue + rng.range(20, 70),
    rng.range(0.55, 0.9),
    night ? rng.range(0.25, 0.38) : rng.range(0.62, 0.8),
  );
  const horizon = rng.range(0.6, 0.72);
  const sunColor = night ? hsl(hue + 180, 0.25, 0.9) : hsl(rng.range(15, 60), 0.95, 0.72);
  const nearColor = hsl(
    hue + 180 + rng.range(-40, 40),
    rng.range(0.25, 0.45),
    night ? 0.09 : rng.range(0.14, 0.24),
  );
  const farColor = mix(hsl(hue + 200, 0.3, night ? 0.15 : 0.32), skyHorizon, 0.4);
  return {
    skyTop,
    skyHorizon,
    horizon,
    cloudColor: night ? mix(skyHorizon, [200, 200, 220], 0.3) : mix(skyHorizon, [255, 255, 255], 0.75),
    cloudCover: rng.range(0.35, 0.65),
    cloudOctaves: [NoiseGrid.random(rng, 6, 5), NoiseGrid.random(rng, 15, 9)],
    sun: {
      x: rng.range(0.15, 0.85),
      y: rng.range(0.12, horizon - 0.18),
      r: rng.range(0.05, 0.11),
      color: sunColor,
      glow: mix(sunColor, skyHorizon, 0.4),
    },
    ridges: [
      ridge(rng, 7, horizon - 0.24, horizon - 0.07, farColor, mix(farColor, skyHorizon, 0.35)),
      ridge(rng, 5, horizon - 0.1, horizon + 0.03, nearColor, mix(nearColor, [0, 0, 0], 0.55)),
    ],
    shapes: Array.from({ length: rng.int(3, 6) }, () => randomShape(rng, accentHue, horizon)),
    caption: captionOf(prompt),
  };
}

/** The prompt as the font can draw it: accents dropped ("Épée" → "EPEE"), whitespace collapsed, upper case. */
function captionOf(prompt: string): string {
  const plain = prompt.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
  return plain.replace(/\s+/g, ' ').trim().toUpperCase().slice(0, CAPTION_CHARS);
}

function ridge(rng: Rng, points: number, top: number, low: number, color: Rgb, baseColor: Rgb): Ridge {
  return { heights: Array.from({ length: points }, () => rng.range(top, low)), color, baseColor };
}

function randomShape(rng: Rng, accentHue: number, horizon: number): Shape {
  return {
    kind: rng.pick(['circle', 'ring', 'rect'] as const),
    x: rng.range(0.1, 0.9),
    y: rng.range(0.1, horizon),
    size: rng.range(0.04, 0.13),
    aspect: rng.range(0.5, 2),
    color: hsl(accentHue + rng.range(-45, 45), rng.range(0.6, 0.9), rng.range(0.45, 0.7)),
    alpha: rng.range(0.6, 0.9),
    orbitX: rng.range(0.03, 0.12),
    orbitY: rng.range(0.02, 0.08),
    speed: rng.pick([-2, -1, 1, 2]),
    phase: rng.range(0, 2 * Math.PI),
  };
}

/** sfc32, seeded with the first 16 bytes of a digest: small, fast, and identical on every platform. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: Buffer) {
    this.a = seed.readUInt32LE(0);
    this.b = seed.readUInt32LE(4);
    this.c = seed.readUInt32LE(8);
    this.d = seed.readUInt32LE(12);
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
}

/** Value noise on a grid that wraps horizontally, sampled with smoothstep interpolation. */
class NoiseGrid {
  private constructor(
    readonly cols: number,
    readonly rows: number,
    private readonly values: Float64Array,
  ) {}

  static random(rng: Rng, cols: number, rows: number): NoiseGrid {
    const values = new Float64Array(cols * (rows + 1));
    for (let i = 0; i < values.length; i++) values[i] = rng.next();
    return new NoiseGrid(cols, rows, values);
  }

  /** The grid blended vertically at `v` (0..1 of the height), one value per column. */
  row(v: number, out: Float64Array): void {
    const y = v * this.rows;
    const j = Math.min(Math.floor(y), this.rows - 1);
    const f = smooth(y - j);
    for (let i = 0; i < this.cols; i++) {
      const top = this.values[j * this.cols + i]!;
      out[i] = top + (this.values[(j + 1) * this.cols + i]! - top) * f;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Drawing

class Canvas {
  readonly rgba: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.rgba = new Uint8Array(width * height * 4).fill(255);
  }

  /** Mixes `color` into pixel (x, y) with opacity `alpha` (0..1); out-of-bounds pixels are ignored. */
  blend(x: number, y: number, color: Rgb, alpha: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || alpha <= 0) return;
    const i = (y * this.width + x) * 4;
    const a = Math.min(alpha, 1);
    const px = this.rgba;
    px[i] = px[i]! + (color[0] - px[i]!) * a;
    px[i + 1] = px[i + 1]! + (color[1] - px[i + 1]!) * a;
    px[i + 2] = px[i + 2]! + (color[2] - px[i + 2]!) * a;
  }

  set(x: number, y: number, r: number, g: number, b: number): void {
    const i = (y * this.width + x) * 4;
    this.rgba[i] = r;
    this.rgba[i + 1] = g;
    this.rgba[i + 2] = b;
  }
}

/** `time` is in motion cycles: 0 for a still, and the scene looks the same again at every whole number. */
function drawScene(canvas: Canvas, scene: Scene, time: number): void {
  const angle = 2 * Math.PI * time;
  drawSky(canvas, scene, angle);
  drawSun(canvas, scene, angle);
  for (const r of scene.ridges) drawRidge(canvas, r);
  for (const shape of scene.shapes) drawShape(canvas, shape, angle);
  drawCaption(canvas, scene.caption);
}

function drawSky(canvas: Canvas, scene: Scene, angle: number): void {
  const { width, height } = canvas;
  const horizonY = Math.ceil(scene.horizon * height);
  // Clouds sway on a small circle rather than scrolling away, so any whole number of cycles loops cleanly.
  const driftU = 0.35 * Math.cos(angle);
  const driftV = 0.04 * Math.sin(angle);
  const octaves = scene.cloudOctaves.map((grid) => ({
    grid,
    row: new Float64Array(grid.cols),
    columns: ColumnSampler.across(grid.cols, width, driftU),
  }));
  const [broad, fine] = octaves;
  for (let y = 0; y < height; y++) {
    const v = y / height;
    const sky = mix(scene.skyTop, scene.skyHorizon, Math.min(1, v / scene.horizon) ** 1.4);
    if (y >= horizonY || !broad || !fine) {
      for (let x = 0; x < width; x++) canvas.set(x, y, sky[0], sky[1], sky[2]);
      continue;
    }
    for (const o of octaves) o.grid.row(clamp01(v / scene.horizon + driftV), o.row);
    const fadeNearHorizon = 1 - smooth(clamp01((v / scene.horizon - 0.75) / 0.25));
    for (let x = 0; x < width; x++) {
      const n = 0.65 * broad.columns.sample(broad.row, x) + 0.35 * fine.columns.sample(fine.row, x);
      const density = smooth(clamp01((n - scene.cloudCover) / 0.25)) * 0.85 * fadeNearHorizon;
      canvas.set(
        x,
        y,
        sky[0] + (scene.cloudColor[0] - sky[0]) * density,
        sky[1] + (scene.cloudColor[1] - sky[1]) * density,
        sky[2] + (scene.cloudColor[2] - sky[2]) * density,
      );
    }
  }
}

/**
 * Precomputed horizontal interpolation (left cell, right cell, smoothed weight) for every pixel column of a
 * noise row that wraps around once across the image, shifted by `offset` image widths.
 */
class ColumnSampler {
  private constructor(
    private readonly left: Uint16Array,
    private readonly right: Uint16Array,
    private readonly weight: Float64Array,
  ) {}

  static across(cells: number, width: number, offset: number): ColumnSampler {
    const left = new Uint16Array(width);
    const right = new Uint16Array(width);
    const weight = new Float64Array(width);
    for (let x = 0; x < width; x++) {
      const u = x / width + offset;
      const p = (u - Math.floor(u)) * cells;
      const i = Math.floor(p);
      left[x] = i % cells;
      right[x] = (i + 1) % cells;
      weight[x] = smooth(p - i);
    }
    return new ColumnSampler(left, right, weight);
  }

  sample(row: Float64Array, x: number): number {
    const a = row[this.left[x]!]!;
    return a + (row[this.right[x]!]! - a) * this.weight[x]!;
  }
}

function drawSun(canvas: Canvas, scene: Scene, angle: number): void {
  const unit = Math.min(canvas.width, canvas.height);
  const { sun } = scene;
  const cx = sun.x * canvas.width;
  const cy = (sun.y + 0.015 * Math.sin(angle)) * canvas.height;
  const r = sun.r * unit;
  const glowR = r * 2.6;
  forEachPixelNear(canvas, cx, cy, glowR, glowR, (x, y, dx, dy) => {
    const d = Math.sqrt(dx * dx + dy * dy);
    if (d > r) {
      const fall = 1 - (d - r) / (glowR - r);
      if (fall > 0) canvas.blend(x, y, sun.glow, 0.45 * fall * fall);
    }
    canvas.blend(x, y, sun.color, clamp01(r - d + 0.5));
  });
}

function drawRidge(canvas: Canvas, ridge: Ridge): void {
  const { width, height } = canvas;
  const segments = ridge.heights.length - 1;
  for (let x = 0; x < width; x++) {
    const p = (x / Math.max(1, width - 1)) * segments;
    const i = Math.min(Math.floor(p), segments - 1);
    const a = ridge.heights[i]!;
    const b = ridge.heights[i + 1]!;
    // A little sawtooth on top of the smooth profile makes it read as rock rather than as a hill.
    const jag = 0.012 * Math.abs(((p * 7.3) % 2) - 1);
    const top = (a + (b - a) * smooth(p - i) + jag) * height;
    const firstRow = Math.max(0, Math.floor(top));
    for (let y = firstRow; y < height; y++) {
      const depth = clamp01((y - top) / Math.max(1, height - top));
      const color = mix(ridge.color, ridge.baseColor, depth);
      canvas.blend(x, y, color, y === firstRow ? 1 - (top - firstRow) : 1);
    }
  }
}

function drawShape(canvas: Canvas, shape: Shape, angle: number): void {
  const unit = Math.min(canvas.width, canvas.height);
  const a = shape.phase + shape.speed * angle;
  const cx = shape.x * canvas.width + shape.orbitX * unit * Math.cos(a);
  const cy = shape.y * canvas.height + shape.orbitY * unit * Math.sin(a);
  const r = shape.size * unit;
  const halfW = shape.kind === 'rect' ? r * Math.sqrt(shape.aspect) : r;
  const halfH = shape.kind === 'rect' ? r / Math.sqrt(shape.aspect) : r;
  forEachPixelNear(canvas, cx, cy, halfW + 1, halfH + 1, (x, y, dx, dy) => {
    canvas.blend(x, y, shape.color, shape.alpha * coverage(shape.kind, dx, dy, halfW, halfH));
  });
}

/** How much of the pixel at offset (dx, dy) from the centre the shape covers, with a 1 px soft edge. */
function coverage(kind: Shape['kind'], dx: number, dy: number, halfW: number, halfH: number): number {
  if (kind === 'rect') return clamp01(halfW - Math.abs(dx) + 0.5) * clamp01(halfH - Math.abs(dy) + 0.5);
  const d = Math.sqrt(dx * dx + dy * dy);
  if (kind === 'circle') return clamp01(halfW - d + 0.5);
  return clamp01(Math.min(halfW - d, d - halfW * 0.62) + 0.5);
}

function forEachPixelNear(
  canvas: Canvas,
  cx: number,
  cy: number,
  rx: number,
  ry: number,
  paint: (x: number, y: number, dx: number, dy: number) => void,
): void {
  const x0 = Math.max(0, Math.floor(cx - rx));
  const x1 = Math.min(canvas.width - 1, Math.ceil(cx + rx));
  const y0 = Math.max(0, Math.floor(cy - ry));
  const y1 = Math.min(canvas.height - 1, Math.ceil(cy + ry));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) paint(x, y, x + 0.5 - cx, y + 0.5 - cy);
  }
}

function drawCaption(canvas: Canvas, caption: string): void {
  if (caption.length === 0) return;
  const { width, height } = canvas;
  const scale = Math.max(1, Math.floor(Math.min((width * 0.9) / (CAPTION_CHARS * 6), (height * 0.07) / 7)));
  const pad = 2 * scale;
  const bandHeight = 7 * scale + 2 * pad;
  const fitting = Math.floor((width - 2 * pad) / (6 * scale));
  const text = caption.slice(0, Math.max(0, fitting));
  const textWidth = text.length * 6 * scale - scale;
  const left = Math.floor((width - textWidth) / 2);
  const top = height - bandHeight + pad;
  for (let y = Math.max(0, height - bandHeight); y < height; y++) {
    for (let x = 0; x < width; x++) canvas.blend(x, y, [0, 0, 0], 0.55);
  }
  [...text].forEach((ch, i) => drawGlyph(canvas, glyphFor(ch), left + i * 6 * scale, top, scale));
}

function drawGlyph(canvas: Canvas, rows: readonly number[], left: number, top: number, scale: number): void {
  rows.forEach((bits, row) => {
    for (let col = 0; col < 5; col++) {
      if (((bits >> (4 - col)) & 1) === 0) continue;
      for (let sy = 0; sy < scale; sy++) {
        for (let sx = 0; sx < scale; sx++) {
          canvas.blend(left + col * scale + sx, top + row * scale + sy, [245, 245, 240], 1);
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// Colour and number helpers

function hsl(hue: number, saturation: number, lightness: number): Rgb {
  const h = (((hue % 360) + 360) % 360) / 60;
  const c = (1 - Math.abs(2 * lightness - 1)) * saturation;
  const x = c * (1 - Math.abs((h % 2) - 1));
  const m = lightness - c / 2;
  const [r, g, b] =
    h < 1
      ? [c, x, 0]
      : h < 2
        ? [x, c, 0]
        : h < 3
          ? [0, c, x]
          : h < 4
            ? [0, x, c]
            : h < 5
              ? [x, 0, c]
              : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

// ---------------------------------------------------------------------------------------------------------
// 5x7 bitmap font: each glyph is seven rows, most significant of the five bits on the left.

const FONT_SOURCE: Record<string, string> = {
  A: '01110 10001 10001 11111 10001 10001 10001',
  B: '11110 10001 10001 11110 10001 10001 11110',
  C: '01110 10001 10000 10000 10000 10001 01110',
  D: '11100 10010 10001 10001 10001 10010 11100',
  E: '11111 10000 10000 11110 10000 10000 11111',
  F: '11111 10000 10000 11110 10000 10000 10000',
  G: '01110 10001 10000 10111 10001 10001 01111',
  H: '10001 10001 10001 11111 10001 10001 10001',
  I: '01110 00100 00100 00100 00100 00100 01110',
  J: '00111 00010 00010 00010 00010 10010 01100',
  K: '10001 10010 10100 11000 10100 10010 10001',
  L: '10000 10000 10000 10000 10000 10000 11111',
  M: '10001 11011 10101 10101 10001 10001 10001',
  N: '10001 10001 11001 10101 10011 10001 10001',
  O: '01110 10001 10001 10001 10001 10001 01110',
  P: '11110 10001 10001 11110 10000 10000 10000',
  Q: '01110 10001 10001 10001 10101 10010 01101',
  R: '11110 10001 10001 11110 10100 10010 10001',
  S: '01111 10000 10000 01110 00001 00001 11110',
  T: '11111 00100 00100 00100 00100 00100 00100',
  U: '10001 10001 10001 10001 10001 10001 01110',
  V: '10001 10001 10001 10001 10001 01010 00100',
  W: '10001 10001 10001 10101 10101 10101 01010',
  X: '10001 10001 01010 00100 01010 10001 10001',
  Y: '10001 10001 10001 01010 00100 00100 00100',
  Z: '11111 00001 00010 00100 01000 10000 11111',
  '0': '01110 10001 10011 10101 11001 10001 01110',
  '1': '00100 01100 00100 00100 00100 00100 01110',
  '2': '01110 10001 00001 00010 00100 01000 11111',
  '3': '11111 00010 00100 00010 00001 10001 01110',
  '4': '00010 00110 01010 10010 11111 00010 00010',
  '5': '11111 10000 11110 00001 00001 10001 01110',
  '6': '00110 01000 10000 11110 10001 10001 01110',
  '7': '11111 00001 00010 00100 01000 01000 01000',
  '8': '01110 10001 10001 01110 10001 10001 01110',
  '9': '01110 10001 10001 01111 00001 00010 01100',
  ' ': '00000 00000 00000 00000 00000 00000 00000',
  '.': '00000 00000 00000 00000 00000 01100 01100',
  ',': '00000 00000 00000 00000 01100 00100 01000',
  '!': '00100 00100 00100 00100 00100 00000 00100',
  '?': '01110 10001 00001 00010 00100 00000 00100',
  '-': '00000 00000 00000 11111 00000 00000 00000',
  ':': '00000 01100 01100 00000 01100 01100 00000',
  ';': '00000 01100 01100 00000 01100 00100 01000',
  "'": '01100 00100 01000 00000 00000 00000 00000',
  '"': '01010 01010 01010 00000 00000 00000 00000',
  '(': '00010 00100 01000 01000 01000 00100 00010',
  ')': '01000 00100 00010 00010 00010 00100 01000',
  '/': '00000 00001 00010 00100 01000 10000 00000',
  '&': '01100 10010 10100 01000 10101 10010 01101',
  '+': '00000 00100 00100 11111 00100 00100 00000',
  '#': '01010 01010 11111 01010 11111 01010 01010',
  '%': '11000 11001 00010 00100 01000 10011 00011',
  '=': '00000 00000 11111 00000 11111 00000 00000',
  '*': '00000 00100 10101 01110 10101 00100 00000',
  '@': '01110 10001 00001 01101 10101 10101 01110',
  $: '00100 01111 10100 01110 00101 11110 00100',
  _: '00000 00000 00000 00000 00000 00000 11111',
};

const FONT: ReadonlyMap<string, readonly number[]> = new Map(
  Object.entries(FONT_SOURCE).map(([ch, rows]) => [ch, rows.split(' ').map((r) => parseInt(r, 2))]),
);

/** Characters outside the font (accents, emoji, ...) show as '?'. */
function glyphFor(ch: string): readonly number[] {
  return FONT.get(ch) ?? FONT.get('?')!;
}
