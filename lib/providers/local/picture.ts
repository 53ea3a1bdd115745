// Drawing a decoded input image (./decode.ts) onto a canvas: fitted into the frame, or a moving view
// over it for image-to-video.
import type { Canvas } from './draw';
import type { DecodedImage } from './decode';

/** A rectangle in pixels (fractional allowed). */
export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Bilinear sampling stays sharp up to about this much shrinking; beyond it the source is box-filtered first. */
const MAX_BILINEAR_SHRINK = 2;

/** The largest rectangle of the image's aspect centred in the frame (the whole image shows). */
export function containRect(image: DecodedImage, width: number, height: number): Rect {
  const scale = Math.min(width / image.width, height / image.height);
  const w = image.width * scale;
  const h = image.height * scale;
  return { x: (width - w) / 2, y: (height - h) / 2, w, h };
}

/** The part of the image of the frame's aspect, centred, that fills the frame (the rest is cropped). */
export function coverRect(image: DecodedImage, width: number, height: number): Rect {
  const scale = Math.max(width / image.width, height / image.height);
  const w = width / scale;
  const h = height / scale;
  return { x: (image.width - w) / 2, y: (image.height - h) / 2, w, h };
}

/**
 * An input image ready to be drawn many times (once per frame) at about `targetScale` (destination pixels per
 * source pixel): shrunk once by an integer box filter when it is much larger than the output.
 */
export class Picture {
  private constructor(
    private readonly image: DecodedImage,
    /** Source pixels per pixel of `image` (the box filter's factor). */
    private readonly factor: number,
  ) {}

  static prepare(image: DecodedImage, targetScale: number): Picture {
    const factor = Math.max(1, Math.floor(1 / (targetScale * MAX_BILINEAR_SHRINK)));
    return new Picture(factor > 1 ? boxShrink(image, factor) : image, factor);
  }

  /**
   * Draws the `src` rectangle of the original image (its pixel coordinates) into `dst` on the canvas,
   * composited over what is there by the image's alpha times `opacity`.
   */
  draw(canvas: Canvas, src: Rect, dst: Rect, opacity = 1): void {
    const { width: iw, height: ih, rgba } = this.image;
    const px = canvas.rgba;
    const sx = src.x / this.factor;
    const sy = src.y / this.factor;
    const kx = src.w / this.factor / dst.w;
    const ky = src.h / this.factor / dst.h;
    const x0 = Math.max(0, Math.floor(dst.x));
    const x1 = Math.min(canvas.width, Math.ceil(dst.x + dst.w));
    const y0 = Math.max(0, Math.floor(dst.y));
    const y1 = Math.min(canvas.height, Math.ceil(dst.y + dst.h));
    for (let y = y0; y < y1; y++) {
      const v = clamp(sy + (y + 0.5 - dst.y) * ky - 0.5, 0, ih - 1);
      const r0 = Math.floor(v);
      const r1 = Math.min(r0 + 1, ih - 1);
      const fy = v - r0;
      for (let x = x0; x < x1; x++) {
        const u = clamp(sx + (x + 0.5 - dst.x) * kx - 0.5, 0, iw - 1);
        const c0 = Math.floor(u);
        const c1 = Math.min(c0 + 1, iw - 1);
        const fx = u - c0;
        const a = (r0 * iw + c0) * 4;
        const b = (r0 * iw + c1) * 4;
        const c = (r1 * iw + c0) * 4;
        const d = (r1 * iw + c1) * 4;
        const w00 = (1 - fx) * (1 - fy);
        const w01 = fx * (1 - fy);
        const w10 = (1 - fx) * fy;
        const w11 = fx * fy;
        const alpha =
          ((rgba[a + 3]! * w00 + rgba[b + 3]! * w01 + rgba[c + 3]! * w10 + rgba[d + 3]! * w11) / 255) *
          opacity;
        if (alpha <= 0) continue;
        const o = (y * canvas.width + x) * 4;
        for (let ch = 0; ch < 3; ch++) {
          const s = rgba[a + ch]! * w00 + rgba[b + ch]! * w01 + rgba[c + ch]! * w10 + rgba[d + ch]! * w11;
          px[o + ch] = px[o + ch]! + (s - px[o + ch]!) * alpha;
        }
      }
    }
  }
}

/** Averages `factor` x `factor` blocks (the last row and column take what is left). */
function boxShrink(image: DecodedImage, factor: number): DecodedImage {
  const width = Math.ceil(image.width / factor);
  const height = Math.ceil(image.height / factor);
  const rgba = new Uint8Array(width * height * 4);
  const sums = new Float64Array(width * 4);
  const counts = new Uint32Array(width);
  for (let y = 0; y < height; y++) {
    sums.fill(0);
    counts.fill(0);
    const rowEnd = Math.min(image.height, (y + 1) * factor);
    for (let sy = y * factor; sy < rowEnd; sy++) {
      for (let sx = 0; sx < image.width; sx++) {
        const cell = Math.floor(sx / factor);
        const i = (sy * image.width + sx) * 4;
        for (let ch = 0; ch < 4; ch++) sums[cell * 4 + ch] = sums[cell * 4 + ch]! + image.rgba[i + ch]!;
        counts[cell] = counts[cell]! + 1;
      }
    }
    for (let x = 0; x < width; x++) {
      for (let ch = 0; ch < 4; ch++)
        rgba[(y * width + x) * 4 + ch] = Math.round(sums[x * 4 + ch]! / counts[x]!);
    }
  }
  return { width, height, rgba };
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
