import { encode as encodeJpeg } from 'jpeg-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { crc32, deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findModel, type ModelDefinition } from '../../lib/catalog/models';
import { decodeImage, InputImageError } from '../../lib/providers/local/decode';
import { encodePng } from '../../lib/providers/local/png';
import { renderAnimation, renderImage } from '../../lib/providers/local/render';
import { storageInputReader } from '../../lib/providers/local/storage-input';
import { LocalProvider } from '../../lib/providers/local-provider';
import { NonRetryableProviderError, type OutputSource } from '../../lib/providers/provider';
import { FsStorage } from '../../lib/storage/fs-storage';
import { decodeGif, decodePng } from '../support/media-decoders';

type Rgb = [number, number, number];
const RED: Rgb = [220, 30, 30];
const GREEN: Rgb = [30, 200, 60];
const BLUE: Rgb = [30, 60, 220];
const YELLOW: Rgb = [240, 220, 40];

/** A solid RGBA image, or one in four quadrants (top-left, top-right, bottom-left, bottom-right). */
function pattern(width: number, height: number, colours: Rgb[]): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = colours.length === 1 ? 0 : (y < height / 2 ? 0 : 2) + (x < width / 2 ? 0 : 1);
      rgba.set([...colours[q]!, 255], (y * width + x) * 4);
    }
  }
  return rgba;
}

const solidPng = (c: Rgb, w = 64, h = 48) => encodePng(w, h, pattern(w, h, [c]));
const quadrantPng = (w = 96, h = 96) => encodePng(w, h, pattern(w, h, [RED, GREEN, BLUE, YELLOW]));

/** Deterministic pseudo-random bytes (xorshift32). */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) % 256;
  }
  return out;
}

// A PNG writer independent of lib/providers/local/png.ts: any colour type, bit depth and filter.

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
}

interface RawPng {
  width: number;
  height: number;
  colorType: number;
  bitDepth?: number;
  /** Unfiltered samples, row-major. */
  samples: Uint8Array;
  filter: number;
  palette?: Uint8Array;
  trns?: Uint8Array;
  interlace?: number;
}

function writePng(p: RawPng): Buffer {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[p.colorType]!;
  const depth = p.bitDepth ?? 8;
  const bpp = (channels * depth) / 8;
  const stride = p.width * bpp;
  const raw = Buffer.alloc(p.height * (stride + 1));
  for (let y = 0; y < p.height; y++) {
    raw[y * (stride + 1)] = p.filter;
    for (let i = 0; i < stride; i++) {
      const at = (yy: number, ii: number) => (yy < 0 || ii < 0 ? 0 : p.samples[yy * stride + ii]!);
      const [a, b, c] = [at(y, i - bpp), at(y - 1, i), at(y - 1, i - bpp)];
      const pa = Math.abs(b - c);
      const pb = Math.abs(a - c);
      const pc = Math.abs(a + b - 2 * c);
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      const predictor = [0, a, b, (a + b) >> 1, paeth][p.filter]!;
      raw[y * (stride + 1) + 1 + i] = (p.samples[y * stride + i]! - predictor) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(p.width, 0);
  ihdr.writeUInt32BE(p.height, 4);
  ihdr.set([depth, p.colorType, 0, 0, p.interlace ?? 0], 8);
  const compressed = deflateSync(raw);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(p.palette ? [chunk('PLTE', p.palette)] : []),
    ...(p.trns ? [chunk('tRNS', p.trns)] : []),
    // Split in two, as encoders that stream do: the decoder must join the IDATs.
    chunk('IDAT', compressed.subarray(0, compressed.length >> 1)),
    chunk('IDAT', compressed.subarray(compressed.length >> 1)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

const near = (a: ArrayLike<number>, b: ArrayLike<number>, tolerance: number) =>
  [0, 1, 2].every((c) => Math.abs(a[c]! - b[c]!) <= tolerance);

/** Mean colour of the box of side `size` centred on (cx, cy). */
function meanAt(rgba: Uint8Array, width: number, cx: number, cy: number, size = 6): Rgb {
  const sum = [0, 0, 0];
  let n = 0;
  for (let y = Math.round(cy - size / 2); y < Math.round(cy + size / 2); y++) {
    for (let x = Math.round(cx - size / 2); x < Math.round(cx + size / 2); x++) {
      for (let c = 0; c < 3; c++) sum[c]! += rgba[(y * width + x) * 4 + c]!;
      n++;
    }
  }
  return sum.map((v) => Math.round(v / n)) as Rgb;
}

/** GIF frames as RGBA, through the palette. */
function gifFrames(bytes: Buffer): { width: number; height: number; frames: Uint8Array[] } {
  const gif = decodeGif(bytes);
  const frames = gif.frames.map((f) => {
    const rgba = new Uint8Array(f.pixels.length * 4);
    f.pixels.forEach((index, p) => rgba.set([...gif.palette.subarray(index * 3, index * 3 + 3), 255], p * 4));
    return rgba;
  });
  return { width: gif.width, height: gif.height, frames };
}

/** Share of the pixels above the caption band that are (after the prompt's light tint) one of `colours`. */
function shareFrom(rgba: Uint8Array, width: number, height: number, colours: Rgb[]): number {
  let hits = 0;
  let total = 0;
  for (let y = 0; y < height * 0.8; y++) {
    for (let x = 0; x < width; x++) {
      const px = rgba.subarray((y * width + x) * 4);
      total++;
      if (colours.some((c) => near(px, c, 45))) hits++;
    }
  }
  return hits / total;
}

const TINT_TOLERANCE = 40; // the prompt's tint (12 % of its colour) plus GIF quantisation

describe('decodeImage: PNG', () => {
  const [w, h] = [13, 7];
  const cases = [
    { name: 'gray', colorType: 0, channels: 1, rgba: (s: number[]) => [s[0]!, s[0]!, s[0]!, 255] },
    { name: 'gray+alpha', colorType: 4, channels: 2, rgba: (s: number[]) => [s[0]!, s[0]!, s[0]!, s[1]!] },
    { name: 'rgb', colorType: 2, channels: 3, rgba: (s: number[]) => [s[0]!, s[1]!, s[2]!, 255] },
    { name: 'rgba', colorType: 6, channels: 4, rgba: (s: number[]) => s },
  ];
  for (const c of cases) {
    for (const filter of [0, 1, 2, 3, 4]) {
      it(`decodes ${c.name} with filter ${filter}`, () => {
        const samples = noise(w * h * c.channels, c.colorType * 10 + filter + 1);
        const png = writePng({ width: w, height: h, colorType: c.colorType, samples, filter });
        const decoded = decodeImage(png, { maxPixels: 1000 });
        expect([decoded.width, decoded.height]).toEqual([w, h]);
        const expected = Array.from({ length: w * h }, (_, p) =>
          c.rgba([...samples.subarray(p * c.channels, (p + 1) * c.channels)]),
        ).flat();
        expect([...decoded.rgba]).toEqual(expected);
      });
    }
  }

  it('decodes a palette image with tRNS alpha, under every filter', () => {
    const palette = noise(16 * 3, 99);
    const trns = Uint8Array.from([0, 128, 255]); // entries past the third are opaque
    const indices = noise(w * h, 5).map((v) => v % 16);
    for (const filter of [0, 1, 2, 3, 4]) {
      const png = writePng({ width: w, height: h, colorType: 3, samples: indices, filter, palette, trns });
      const { rgba } = decodeImage(png, { maxPixels: 1000 });
      indices.forEach((index, p) => {
        const alpha = index < trns.length ? trns[index]! : 255;
        expect([...rgba.subarray(p * 4, p * 4 + 4)]).toEqual([
          ...palette.subarray(index * 3, index * 3 + 3),
          alpha,
        ]);
      });
    }
  });

  it('keeps the high byte of 16-bit samples and honours a tRNS colour key', () => {
    const samples = Uint8Array.from([0x12, 0x34, 0xab, 0xcd, 0x00, 0xff, 9, 9, 9, 9, 9, 9]);
    const png16 = writePng({ width: 2, height: 1, colorType: 2, bitDepth: 16, samples, filter: 0 });
    expect([...decodeImage(png16, { maxPixels: 10 }).rgba]).toEqual([0x12, 0xab, 0x00, 255, 9, 9, 9, 255]);
    const key = Uint8Array.from([0, 7]); // gray 7 is transparent
    const gray = writePng({
      width: 3,
      height: 1,
      colorType: 0,
      samples: Uint8Array.from([6, 7, 8]),
      filter: 1,
      trns: key,
    });
    expect([...decodeImage(gray, { maxPixels: 10 }).rgba]).toEqual([6, 6, 6, 255, 7, 7, 7, 0, 8, 8, 8, 255]);
  });

  it('decodes what encodePng writes', () => {
    const rgba = noise(40 * 30 * 4, 3);
    expect(
      Buffer.from(decodeImage(encodePng(40, 30, rgba), { maxPixels: 1200 }).rgba).equals(Buffer.from(rgba)),
    ).toBe(true);
  });

  it('refuses interlaced, truncated, corrupt and oversized PNGs with a clear InputImageError', () => {
    const good = writePng({ width: w, height: h, colorType: 2, samples: noise(w * h * 3, 1), filter: 4 });
    const interlaced = writePng({
      width: w,
      height: h,
      colorType: 2,
      samples: noise(w * h * 3, 1),
      filter: 0,
      interlace: 1,
    });
    expect(() => decodeImage(interlaced, { maxPixels: 1000 })).toThrow(/interlaced/);
    for (const cut of [20, 40, good.length - 30, good.length - 5]) {
      expect(() => decodeImage(good.subarray(0, cut), { maxPixels: 1000 })).toThrow(/truncated/);
    }
    const flipped = Buffer.from(good);
    flipped[45] = flipped[45]! ^ 0xff; // inside the first IDAT
    expect(() => decodeImage(flipped, { maxPixels: 1000 })).toThrow(/corrupt \(bad CRC in IDAT\)/);
    expect(() => decodeImage(good, { maxPixels: w * h - 1 })).toThrow(/13x7 pixels, more than 90/);
    // A header claiming 100000x100000 pixels is refused before anything is inflated.
    const bomb = Buffer.from(good);
    bomb.writeUInt32BE(100_000, 16);
    bomb.writeUInt32BE(100_000, 20);
    bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29);
    expect(() => decodeImage(bomb, { maxPixels: 40_000_000 })).toThrow(/more than 40000000/);
    // Image data that inflates to more than the header allows is corrupt, not a bigger picture.
    const long = writePng({ width: w, height: h * 2, colorType: 2, samples: noise(w * h * 6, 1), filter: 0 });
    const lying = Buffer.from(long);
    lying.writeUInt32BE(h, 20);
    lying.writeUInt32BE(crc32(lying.subarray(12, 29)), 29);
    expect(() => decodeImage(lying, { maxPixels: 1000 })).toThrow(/corrupt or larger than its header says/);
    const sixteenPalette = writePng({
      width: 1,
      height: 1,
      colorType: 3,
      bitDepth: 16,
      samples: new Uint8Array(2),
      filter: 0,
      palette: new Uint8Array(3),
    });
    expect(() => decodeImage(sixteenPalette, { maxPixels: 10 })).toThrow(/bit depth 16/);
    for (const bad of [interlaced, good.subarray(0, 40), flipped]) {
      expect(() => decodeImage(bad, { maxPixels: 1000 })).toThrow(InputImageError);
    }
  });
});

describe('decodeImage: JPEG, WebP and others', () => {
  const jpeg = () =>
    encodeJpeg({ width: 64, height: 64, data: Buffer.from(pattern(64, 64, [RED, GREEN, BLUE, YELLOW])) }, 95)
      .data;

  it('decodes a JPEG to RGBA', () => {
    const image = decodeImage(jpeg(), { maxPixels: 64 * 64 });
    expect([image.width, image.height, image.rgba.length]).toEqual([64, 64, 64 * 64 * 4]);
    expect(near(meanAt(image.rgba, 64, 16, 16), RED, 12)).toBe(true);
    expect(near(meanAt(image.rgba, 64, 48, 16), GREEN, 12)).toBe(true);
    expect(near(meanAt(image.rgba, 64, 16, 48), BLUE, 12)).toBe(true);
    expect(near(meanAt(image.rgba, 64, 48, 48), YELLOW, 12)).toBe(true);
  });

  it('refuses truncated and oversized JPEGs, WebP and non-images with a clear InputImageError', () => {
    const bytes = jpeg();
    expect(() => decodeImage(bytes.subarray(0, bytes.length >> 1), { maxPixels: 10_000 })).toThrow(
      /the JPEG cannot be decoded/,
    );
    expect(() => decodeImage(bytes, { maxPixels: 64 * 64 - 1 })).toThrow(/maxResolutionInMP/);
    const webp = Buffer.concat([
      Buffer.from('RIFF'),
      Buffer.alloc(4),
      Buffer.from('WEBPVP8 '),
      Buffer.alloc(20),
    ]);
    expect(() => decodeImage(webp, { maxPixels: 10_000 })).toThrow(/cannot decode WebP/);
    expect(() => decodeImage(Buffer.from('GIF89a....'), { maxPixels: 10_000 })).toThrow(/not a PNG or JPEG/);
    expect(() => decodeImage(new Uint8Array(0), { maxPixels: 10_000 })).toThrow(InputImageError);
  });
});

describe('renderImage from an input image', () => {
  const request = { prompt: 'Make it a watercolour', seed: 11, width: 320, height: 180 };

  it('starts from the input, contained in the frame, with the scene around it', () => {
    const out = decodePng(renderImage({ ...request, image: solidPng(RED, 48, 48) }).bytes);
    expect([out.width, out.height]).toEqual([320, 180]);
    expect(near(meanAt(out.rgba, 320, 160, 80), RED, TINT_TOLERANCE)).toBe(true);
    // A square input in a 16:9 frame leaves margins left and right: those are the prompt's scene.
    expect(near(meanAt(out.rgba, 320, 20, 60), RED, TINT_TOLERANCE)).toBe(false);

    const other = decodePng(renderImage({ ...request, image: solidPng(BLUE, 48, 48) }).bytes);
    expect(near(meanAt(other.rgba, 320, 160, 80), BLUE, TINT_TOLERANCE)).toBe(true);
    expect(near(meanAt(other.rgba, 320, 160, 80), RED, TINT_TOLERANCE)).toBe(false);
  });

  it('keeps the input where it is: quadrants stay in their places, the caption is drawn over it', () => {
    const out = decodePng(renderImage({ ...request, width: 256, height: 256, image: quadrantPng() }).bytes);
    expect(near(meanAt(out.rgba, 256, 64, 64), RED, TINT_TOLERANCE)).toBe(true);
    expect(near(meanAt(out.rgba, 256, 192, 64), GREEN, TINT_TOLERANCE)).toBe(true);
    expect(near(meanAt(out.rgba, 256, 64, 160), BLUE, TINT_TOLERANCE)).toBe(true);
    expect(near(meanAt(out.rgba, 256, 192, 160), YELLOW, TINT_TOLERANCE)).toBe(true);
    expect(shareFrom(out.rgba, 256, 256, [RED, GREEN, BLUE, YELLOW])).toBeGreaterThan(0.97);
    const bottom = meanAt(out.rgba, 256, 4, 253, 4); // the caption band darkens the bottom rows
    expect(bottom[0] + bottom[1] + bottom[2]).toBeLessThan(YELLOW[0] + YELLOW[1] + YELLOW[2] - 150);
  });

  it('is deterministic, depends on the prompt, and scales down a large input smoothly', () => {
    const image = quadrantPng(1500, 1000);
    const a = renderImage({ ...request, image }).bytes;
    expect(renderImage({ ...request, image }).bytes.equals(a)).toBe(true);
    expect(renderImage({ ...request, prompt: 'Make it an oil painting', image }).bytes.equals(a)).toBe(false);
    const out = decodePng(a);
    expect(near(meanAt(out.rgba, 320, 100, 50), RED, TINT_TOLERANCE)).toBe(true);
  });

  it('starts from a JPEG as well', () => {
    const jpeg = encodeJpeg({ width: 32, height: 32, data: Buffer.from(pattern(32, 32, [GREEN])) }, 90).data;
    const out = decodePng(renderImage({ ...request, image: jpeg }).bytes);
    expect(near(meanAt(out.rgba, 320, 160, 80), GREEN, TINT_TOLERANCE)).toBe(true);
  });

  it('refuses an input over the pixel cap', () => {
    expect(() => renderImage({ ...request, image: solidPng(RED, 64, 48), maxInputPixels: 1000 })).toThrow(
      InputImageError,
    );
  });
});

describe('renderAnimation from an input image', () => {
  const request = { prompt: 'The cat walks away', seed: 5, width: 1280, height: 720, durationSeconds: 2 };

  it('zooms into the input: first and last frames differ, and both come from the input', () => {
    const media = renderAnimation({ ...request, image: quadrantPng(160, 90) });
    const { width, height, frames } = gifFrames(media.bytes);
    expect([width, height, frames.length]).toEqual([320, 180, 16]);
    const [first, last] = [frames[0]!, frames.at(-1)!];
    expect(Buffer.from(first).equals(Buffer.from(last))).toBe(false);
    const quadrants = [RED, GREEN, BLUE, YELLOW];
    expect(shareFrom(first, width, height, quadrants)).toBeGreaterThan(0.95);
    expect(shareFrom(last, width, height, quadrants)).toBeGreaterThan(0.95);
    // The first frame shows the whole input, each quadrant where it is.
    expect(near(meanAt(first, width, 80, 45), RED, TINT_TOLERANCE)).toBe(true);
    expect(near(meanAt(first, width, 240, 45), GREEN, TINT_TOLERANCE)).toBe(true);
    expect(near(meanAt(first, width, 80, 120), BLUE, TINT_TOLERANCE)).toBe(true);
    // Every frame moves on from the one before (the view keeps travelling).
    const unchanged = frames.slice(1).filter((f, i) => Buffer.from(f).equals(Buffer.from(frames[i]!)));
    expect(unchanged.length).toBeLessThan(3);
  });

  it('zooms by 1.3 over the clip: stripes of the input widen from 80 to 104 px', () => {
    const colours = [RED, GREEN, BLUE, YELLOW];
    const stripes = new Uint8Array(160 * 90 * 4);
    for (let p = 0; p < 160 * 90; p++) stripes.set([...colours[Math.floor((p % 160) / 40)]!, 255], p * 4);
    const media = renderAnimation({ ...request, image: encodePng(160, 90, stripes) });
    const { width, frames } = gifFrames(media.bytes);
    /** Lengths of the runs of one stripe colour along row 40, leaving out those cut by the frame's edges. */
    const innerRuns = (rgba: Uint8Array) => {
      const classOf = (x: number) =>
        colours.findIndex((c) => near(rgba.subarray((40 * width + x) * 4), c, 45));
      const runs: number[] = [];
      let start = 0;
      for (let x = 1; x <= width; x++) {
        if (x < width && classOf(x) === classOf(start)) continue;
        if (start > 0 && x < width) runs.push(x - start);
        start = x;
      }
      return runs.filter((r) => r > 10); // not the blend of two stripes at a boundary
    };
    const first = innerRuns(frames[0]!);
    const last = innerRuns(frames.at(-1)!);
    expect(first.length).toBeGreaterThanOrEqual(2);
    for (const run of first) expect(Math.abs(run - 80)).toBeLessThanOrEqual(3);
    expect(last.length).toBeGreaterThanOrEqual(1);
    for (const run of last) expect(Math.abs(run - 104)).toBeLessThanOrEqual(3);
  });

  it('cross-fades to the end image', () => {
    const media = renderAnimation({
      ...request,
      width: 160,
      height: 160,
      image: solidPng(RED),
      endImage: solidPng(BLUE, 40, 40),
    });
    const { width, frames } = gifFrames(media.bytes);
    const centre = (f: Uint8Array) => meanAt(f, width, 80, 70);
    expect(near(centre(frames[0]!), RED, TINT_TOLERANCE)).toBe(true);
    expect(near(centre(frames.at(-1)!), BLUE, TINT_TOLERANCE)).toBe(true);
    const middle = centre(frames[10]!);
    expect(near(middle, RED, TINT_TOLERANCE) || near(middle, BLUE, TINT_TOLERANCE)).toBe(false);
  });

  it('is deterministic', () => {
    const small = { ...request, width: 96, height: 54, image: quadrantPng(48, 48) };
    expect(renderAnimation(small).bytes.equals(renderAnimation(small).bytes)).toBe(true);
  });
});

describe('LocalProvider with input images', () => {
  const kontext = findModel('flux-pro-kontext-max')!;
  const hailuo = findModel('hailuo-02-pro')!;
  const stored = new Map<string, Buffer>([
    ['storage:uploads/red.png', solidPng(RED)],
    ['storage:uploads/blue.png', solidPng(BLUE)],
    ['storage:uploads/corrupt.png', solidPng(RED).subarray(0, 60)],
    [
      'storage:uploads/cat.webp',
      Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 '), Buffer.alloc(20)]),
    ],
  ]);
  const provider = new LocalProvider({
    latencyMs: 0,
    failureRate: 0,
    readInput: async (ref) => {
      const bytes = stored.get(ref);
      if (!bytes) throw new NonRetryableProviderError('invalid_input', `no ${ref}`);
      return bytes;
    },
  });
  const job = (model: ModelDefinition, input: Record<string, unknown>) => ({
    requestId: 'local-g-0',
    generationId: 'g',
    model,
    input: { prompt: 'the cat walks away', seed: 1, ...input },
  });
  const render = async (source: OutputSource) => {
    if (source.kind !== 'local') throw new Error('not local');
    const { body } = await provider.openLocal(source);
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };

  it('carries the input references in its output and renders from them in the render pool', async () => {
    const [source] = await provider.result(job(kontext, { image_url: 'storage:uploads/red.png' }));
    expect(source).toMatchObject({
      kind: 'local',
      images: [{ field: 'image_url', ref: 'storage:uploads/red.png' }],
    });
    const png = decodePng(await render(source!));
    expect(near(meanAt(png.rgba, png.width, png.width / 2, png.height / 2), RED, TINT_TOLERANCE)).toBe(true);

    const [video] = await provider.result(
      job(hailuo, { image_url: 'storage:uploads/red.png', end_image_url: 'storage:uploads/blue.png' }),
    );
    expect(video).toMatchObject({
      media: 'animation',
      images: [
        { field: 'image_url', ref: 'storage:uploads/red.png' },
        { field: 'end_image_url', ref: 'storage:uploads/blue.png' },
      ],
    });
    const { width, height, frames } = gifFrames(await render(video!));
    expect(near(meanAt(frames[0]!, width, width / 2, height / 2), RED, TINT_TOLERANCE)).toBe(true);
    expect(near(meanAt(frames.at(-1)!, width, width / 2, height / 2), BLUE, TINT_TOLERANCE)).toBe(true);
  });

  it('renders from the prompt alone without a storage reference (an end image of an image model is ignored)', async () => {
    const [plain] = await provider.result(job(kontext, {}));
    expect(plain).not.toHaveProperty('images');
    const [url] = await provider.result(job(kontext, { image_url: 'https://example.com/cat.png' }));
    expect(url).not.toHaveProperty('images');
    const [endOnly] = await provider.result(job(kontext, { end_image_url: 'storage:uploads/blue.png' }));
    expect(endOnly).not.toHaveProperty('images');
  });

  it('refuses a WebP or non-image input at submit, and a corrupt one when rendering, as invalid_input', async () => {
    await expect(
      provider.submit(job(hailuo, { image_url: 'storage:uploads/red.png' })),
    ).resolves.toMatchObject({
      requestId: expect.stringMatching(/^local-g-/),
    });
    const refused = provider.submit(job(hailuo, { image_url: 'storage:uploads/cat.webp' }));
    await expect(refused).rejects.toThrow(NonRetryableProviderError);
    await expect(refused).rejects.toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/image_url: .*WebP/),
    });
    await expect(
      provider.submit(job(kontext, { image_url: 'storage:uploads/missing.png' })),
    ).rejects.toMatchObject({
      code: 'invalid_input',
    });

    const [corrupt] = await provider.result(job(kontext, { image_url: 'storage:uploads/corrupt.png' }));
    const failed = render(corrupt!);
    await expect(failed).rejects.toThrow(NonRetryableProviderError);
    await expect(failed).rejects.toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/truncated/),
    });
  });

  it('fails a job with an input image when it was built without a reader', async () => {
    const blind = new LocalProvider({ latencyMs: 0, failureRate: 0 });
    await expect(blind.submit(job(kontext, { image_url: 'storage:uploads/red.png' }))).rejects.toMatchObject({
      code: 'configuration_error',
    });
  });
});

describe('storageInputReader', () => {
  let dir: string;
  let storage: FsStorage;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'velro-inputs-'));
    storage = new FsStorage(dir);
    await storage.put('uploads/a.png', Readable.from([solidPng(RED)]), 'image/png');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads storage references, bounded in bytes; missing objects and other references are invalid_input', async () => {
    const read = storageInputReader(storage, 1 << 20);
    expect((await read('storage:uploads/a.png')).equals(solidPng(RED))).toBe(true);
    await expect(read('storage:uploads/none.png')).rejects.toMatchObject({ code: 'invalid_input' });
    for (const ref of ['upload:3f0c', 'https://example.com/a.png', 'storage:../etc/passwd', 'storage:']) {
      await expect(read(ref)).rejects.toMatchObject({ code: 'invalid_input' });
    }
    await expect(storageInputReader(storage, 100)('storage:uploads/a.png')).rejects.toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/larger than 100 bytes/),
    });
  });
});
