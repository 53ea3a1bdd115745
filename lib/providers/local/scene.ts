// Scene: everything random is drawn here, once, from the hash; drawing (./draw.ts) is then a pure
// function of time. Also the colour and number helpers both use.
import { createHash } from 'node:crypto';

/** The longest caption drawn (characters). */
export const CAPTION_CHARS = 24;

export type Rgb = readonly [number, number, number];

export interface Shape {
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

export interface Ridge {
  heights: number[]; // top of the ridge as a fraction of image height, at evenly spaced control points
  color: Rgb;
  baseColor: Rgb; // colour at the bottom of the image
}

export interface Scene {
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
  /** Where an image-to-video animation zooms to, as fractions of the input's width and height. */
  focus: { x: number; y: number };
}

export function createScene(prompt: string, seed: number): Scene {
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
    // Drawn last, so every other choice (and the renders made before it existed) stays as it was.
    focus: { x: rng.range(0.3, 0.7), y: rng.range(0.3, 0.7) },
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
export class NoiseGrid {
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

// Colour and number helpers

export function hsl(hue: number, saturation: number, lightness: number): Rgb {
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

export function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

export function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

export function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}
