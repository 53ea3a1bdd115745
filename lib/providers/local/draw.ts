// Drawing a scene (./scene.ts) onto an RGBA canvas at a moment of its motion.
import { glyphFor } from './font';
import { CAPTION_CHARS, clamp01, mix, smooth, type Rgb, type Ridge, type Scene, type Shape } from './scene';

export class Canvas {
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
export function drawScene(canvas: Canvas, scene: Scene, time: number): void {
  drawBackground(canvas, scene, time);
  drawCaption(canvas, scene.caption);
}

/** The scene without its caption: sky, sun, ridges and shapes. */
export function drawBackground(canvas: Canvas, scene: Scene, time: number): void {
  const angle = 2 * Math.PI * time;
  drawSky(canvas, scene, angle);
  drawSun(canvas, scene, angle);
  for (const r of scene.ridges) drawRidge(canvas, r);
  for (const shape of scene.shapes) drawShape(canvas, shape, angle);
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

export function drawCaption(canvas: Canvas, caption: string): void {
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
