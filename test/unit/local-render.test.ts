import { describe, expect, it } from 'vitest';
import { encodeGif, lzwEncode } from '../../lib/providers/local/gif';
import { encodePng } from '../../lib/providers/local/png';
import { renderAnimation, renderImage } from '../../lib/providers/local/render';
import { decodeGif, decodePng, lzwDecode, type DecodedPng } from '../support/media-decoders';

function pixelAt(png: DecodedPng, x: number, y: number): number[] {
  const i = (y * png.width + x) * 4;
  return [...png.rgba.subarray(i, i + 4)];
}

function distinctColours(rgba: Uint8Array): number {
  const seen = new Set<number>();
  for (let i = 0; i < rgba.length; i += 4) seen.add((rgba[i]! << 16) | (rgba[i + 1]! << 8) | rgba[i + 2]!);
  return seen.size;
}

/** Deterministic pseudo-random bytes for test inputs (xorshift32). */
function noise(length: number, seed: number, modulo = 256): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) % modulo;
  }
  return out;
}

const greyPalette = () => Uint8Array.from({ length: 768 }, (_, i) => Math.floor(i / 3));

describe('encodePng', () => {
  it('round-trips arbitrary RGBA pixels through an independent decoder', () => {
    for (const [w, h] of [
      [1, 1],
      [37, 23],
      [300, 7],
    ] as const) {
      const rgba = noise(w * h * 4, w * 31 + h);
      const png = decodePng(encodePng(w, h, rgba));
      expect([png.width, png.height]).toEqual([w, h]);
      expect(png.chunkTypes).toEqual(['IHDR', 'IDAT', 'IEND']);
      expect(Buffer.from(png.rgba).equals(Buffer.from(rgba))).toBe(true);
    }
  });

  it('rejects pixel buffers of the wrong length', () => {
    expect(() => encodePng(2, 2, new Uint8Array(15))).toThrow(RangeError);
    expect(() => encodePng(0, 2, new Uint8Array(0))).toThrow(RangeError);
  });
});

describe('encodeGif', () => {
  it('round-trips frames, including ones long enough to fill the 4096-code table many times', () => {
    const [w, h] = [200, 150];
    const frames = [noise(w * h, 1), noise(w * h, 2, 7), new Uint8Array(w * h).fill(9)];
    const gif = decodeGif(encodeGif(w, h, frames, greyPalette(), [4, 5, 6]));
    expect(gif.loops).toBe(0);
    expect(gif.frames.map((f) => f.delayCs)).toEqual([4, 5, 6]);
    expect(gif.frames[0]!.clearCodes).toBeGreaterThan(5);
    gif.frames.forEach((frame, i) =>
      expect(Buffer.from(frame.pixels).equals(Buffer.from(frames[i]!))).toBe(true),
    );
    expect(Buffer.from(gif.palette).equals(Buffer.from(greyPalette()))).toBe(true);
  });

  it('writes the end code with the width the decoder expects, at every code-width boundary', () => {
    // Incompressible input spends one code per pixel, so these lengths put the last code right around the
    // points where codes widen to 10, 11 and 12 bits and where the table fills up.
    const lengths = [1, 2, 3];
    for (const boundary of [255, 767, 1791, 3839]) {
      for (let n = boundary - 6; n <= boundary + 6; n++) lengths.push(n);
    }
    for (const n of lengths) {
      const pixels = noise(n, n);
      const decoded = lzwDecode(lzwEncode(pixels), 8, n);
      expect(Buffer.from(decoded.pixels).equals(Buffer.from(pixels)), `length ${n}`).toBe(true);
    }
  });

  it('validates its inputs', () => {
    expect(() => encodeGif(2, 2, [], greyPalette(), 10)).toThrow(RangeError);
    expect(() => encodeGif(2, 2, [new Uint8Array(3)], greyPalette(), 10)).toThrow(RangeError);
    expect(() => encodeGif(2, 2, [new Uint8Array(4)], new Uint8Array(10), 10)).toThrow(RangeError);
    expect(() => encodeGif(2, 2, [new Uint8Array(4)], greyPalette(), [1, 2])).toThrow(RangeError);
  });
});

describe('renderImage', () => {
  const request = { prompt: 'A lighthouse on a cliff at dusk', seed: 7, width: 1024, height: 576 };

  it('renders a valid PNG of the requested size', () => {
    const media = renderImage(request);
    expect(media).toMatchObject({ contentType: 'image/png', width: 1024, height: 576 });
    expect(media.durationMs).toBeUndefined();
    const png = decodePng(media.bytes);
    expect([png.width, png.height]).toEqual([1024, 576]);
    for (let i = 3; i < png.rgba.length; i += 4) if (png.rgba[i] !== 255) throw new Error('not opaque');
    expect(distinctColours(png.rgba)).toBeGreaterThan(500);
  });

  it('draws the caption in light text on a dark band at the bottom', () => {
    const png = decodePng(renderImage(request).bytes);
    const bottomRows = Array.from({ length: 50 }, (_, k) => png.height - 1 - k);
    const textPixels = bottomRows.flatMap((y) =>
      Array.from({ length: png.width }, (_, x) => pixelAt(png, x, y)).filter((p) => p[0] === 245),
    );
    expect(textPixels.length).toBeGreaterThan(500);
    expect(textPixels[0]).toEqual([245, 245, 240, 255]);
    const corner = pixelAt(png, 0, png.height - 1);
    expect(corner[0]! + corner[1]! + corner[2]!).toBeLessThan(200);
  });

  it('is deterministic and depends on prompt and seed', () => {
    const a = renderImage(request).bytes;
    expect(renderImage({ ...request }).bytes.equals(a)).toBe(true);
    expect(renderImage({ ...request, prompt: 'A lighthouse on a cliff at dawn' }).bytes.equals(a)).toBe(
      false,
    );
    expect(renderImage({ ...request, seed: 8 }).bytes.equals(a)).toBe(false);
  });

  it('handles the smallest size and prompts the font cannot draw', () => {
    const media = renderImage({ prompt: 'Épée & 龍 — ok?', seed: 0, width: 16, height: 16 });
    expect(decodePng(media.bytes).width).toBe(16);
    expect(renderImage({ prompt: '', seed: -3, width: 40, height: 20 }).width).toBe(40);
  });

  it('rejects out-of-range sizes and seeds with a RangeError', () => {
    for (const size of [15, 4097, 100.5, Number.NaN]) {
      expect(() => renderImage({ ...request, width: size })).toThrow(
        /width must be an integer between 16 and 4096/,
      );
      expect(() => renderImage({ ...request, height: size })).toThrow(RangeError);
    }
    expect(() => renderImage({ ...request, seed: 0.5 })).toThrow(RangeError);
  });

  it('renders a 1024x1024 PNG quickly', () => {
    renderImage({ ...request, width: 1024, height: 1024 }); // warm up the JIT
    const started = performance.now();
    renderImage({ ...request, seed: 99, width: 1024, height: 1024 });
    expect(performance.now() - started).toBeLessThan(1500); // generous: CI machines are slow and shared
  });
});

describe('renderAnimation', () => {
  const request = {
    prompt: 'Waves rolling onto a beach',
    seed: 3,
    width: 1280,
    height: 720,
    durationSeconds: 5,
  };

  it('renders a looping GIF scaled to 320 px with round(duration x fps) frames that move', () => {
    const media = renderAnimation(request);
    expect(media).toMatchObject({ contentType: 'image/gif', width: 320, height: 180, durationMs: 5000 });
    const gif = decodeGif(media.bytes);
    expect([gif.width, gif.height]).toEqual([320, 180]);
    expect(gif.loops).toBe(0);
    expect(gif.frames).toHaveLength(40);
    expect(gif.frames.reduce((sum, f) => sum + f.delayCs, 0)).toBe(500);
    const firstFrame = Buffer.from(gif.frames[0]!.pixels);
    const changed = gif.frames.filter((f) => !Buffer.from(f.pixels).equals(firstFrame));
    expect(changed.length).toBeGreaterThan(30);
    expect(gif.frames[0]!.clearCodes).toBeGreaterThan(1); // a real frame fills the 12-bit table too
  });

  it('keeps the aspect ratio and never upscales', () => {
    expect(renderAnimation({ ...request, width: 576, height: 1024, durationSeconds: 1 })).toMatchObject({
      width: 180,
      height: 320,
    });
    const small = renderAnimation({ ...request, width: 100, height: 50, durationSeconds: 1 });
    expect([small.width, small.height]).toEqual([100, 50]);
    expect(decodeGif(small.bytes).width).toBe(100);
  });

  it('honours fps, spreading the delays so the total matches the duration', () => {
    const media = renderAnimation({ ...request, width: 64, height: 64, durationSeconds: 2.5, fps: 12 });
    const gif = decodeGif(media.bytes);
    expect(gif.frames).toHaveLength(30);
    expect(gif.frames.reduce((sum, f) => sum + f.delayCs, 0)).toBe(250);
    expect(media.durationMs).toBe(2500);
  });

  it('is deterministic and depends on the prompt', () => {
    const small = { ...request, width: 96, height: 54, durationSeconds: 2 };
    const a = renderAnimation(small).bytes;
    expect(renderAnimation({ ...small }).bytes.equals(a)).toBe(true);
    expect(renderAnimation({ ...small, prompt: 'Waves rolling onto a pier' }).bytes.equals(a)).toBe(false);
  });

  it('rejects out-of-range durations, frame rates and sizes', () => {
    for (const durationSeconds of [0.5, 20.5, Number.NaN]) {
      expect(() => renderAnimation({ ...request, durationSeconds })).toThrow(
        /durationSeconds must be between 1 and 20/,
      );
    }
    expect(() => renderAnimation({ ...request, fps: 0 })).toThrow(RangeError);
    expect(() => renderAnimation({ ...request, fps: 25 })).toThrow(RangeError);
    expect(() => renderAnimation({ ...request, width: 8 })).toThrow(RangeError);
  });
});
