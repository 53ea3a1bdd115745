import { encode as encodeJpeg } from 'jpeg-js';
import { encodePng } from '../../lib/providers/local/png';

// Real PNG, JPEG and WebP files of a given size and pattern, made here, for tests of uploads and of
// what is done with an input image (a renderer's output must show the input's colours).

export type Rgb = readonly [r: number, g: number, b: number];
/** One colour for every pixel, or the colour of each pixel by its position. */
export type Fill = Rgb | ((x: number, y: number) => Rgb);

export const RED: Rgb = [255, 0, 0];
export const GREEN: Rgb = [0, 255, 0];
export const BLUE: Rgb = [0, 0, 255];
export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];

/** Four colours, one per quadrant: top left, top right, bottom left, bottom right. */
export function quadrants(
  width: number,
  height: number,
  [topLeft, topRight, bottomLeft, bottomRight]: readonly [Rgb, Rgb, Rgb, Rgb] = [RED, GREEN, BLUE, WHITE],
): (x: number, y: number) => Rgb {
  return (x, y) => {
    const right = x >= width / 2;
    if (y < height / 2) return right ? topRight : topLeft;
    return right ? bottomRight : bottomLeft;
  };
}

const colourOf = (fill: Fill) => (typeof fill === 'function' ? fill : () => fill);

/** The pixels of `fill`, as 8-bit RGBA rows (opaque). */
export function rgbaPixels(width: number, height: number, fill: Fill): Uint8Array {
  const at = colourOf(fill);
  const out = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = at(x, y);
      out.set([r, g, b, 255], (y * width + x) * 4);
    }
  }
  return out;
}

/** A PNG (8-bit RGBA), lossless. */
export function pngImage(width: number, height: number, fill: Fill = RED): Buffer {
  return encodePng(width, height, rgbaPixels(width, height, fill));
}

/** A baseline JPEG (lossy: colours come back close, not exact). */
export function jpegImage(width: number, height: number, fill: Fill = RED, quality = 95): Buffer {
  return encodeJpeg({ width, height, data: rgbaPixels(width, height, fill) }, quality).data;
}

/** A RIFF WebP file of these chunks (fourcc, payload), each padded to an even size. */
export function webpFile(chunks: readonly (readonly [fourcc: string, data: Buffer])[]): Buffer {
  const parts = chunks.map(([fourcc, data]) => {
    const head = Buffer.alloc(8);
    head.write(fourcc, 0, 'latin1');
    head.writeUInt32LE(data.length, 4);
    return Buffer.concat([head, data, Buffer.alloc(data.length & 1)]);
  });
  const body = Buffer.concat([Buffer.from('WEBP', 'latin1'), ...parts]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

/**
 * A lossless WebP (one VP8L chunk), exact. VP8L codes each channel with its own prefix code; here
 * every channel holds at most two values across the image, so each code is a "simple" one of one
 * or two symbols: zero or one bit per channel per pixel, no transforms, no colour cache, no
 * backward references. Enough for solid colours and for the four colours of `quadrants()` above.
 */
export function webpImage(width: number, height: number, fill: Fill = RED): Buffer {
  return webpFile([['VP8L', vp8l(width, height, fill)]]);
}

/** The VP8L bitstream (RFC 9649 §3) of `fill`. */
export function vp8l(width: number, height: number, fill: Fill): Buffer {
  if (width < 1 || height < 1 || width > 16384 || height > 16384)
    throw new RangeError(`VP8L sizes are 1 to 16384, got ${width}x${height}`);
  const at = colourOf(fill);
  // Per channel, in VP8L's order of its prefix codes: green, red, blue (alpha is always 255).
  const values = [new Set<number>(), new Set<number>(), new Set<number>()];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = at(x, y);
      values[0]!.add(g);
      values[1]!.add(r);
      values[2]!.add(b);
    }
  }
  const symbols = values.map((set) => [...set].sort((a, b) => a - b));
  if (symbols.some((s) => s.length > 2))
    throw new RangeError('webpImage takes at most two distinct values per colour channel');

  const bits = new BitWriter();
  bits.write(0x2f, 8); // signature
  bits.write(width - 1, 14);
  bits.write(height - 1, 14);
  bits.write(0, 1); // alpha is not used
  bits.write(0, 3); // version 0
  bits.write(0, 1); // no transform
  bits.write(0, 1); // no colour cache
  bits.write(0, 1); // one prefix code group for the whole image
  const simpleCode = (codeSymbols: readonly number[]) => {
    bits.write(1, 1); // simple code
    bits.write(codeSymbols.length - 1, 1);
    bits.write(1, 1); // the first symbol in 8 bits
    bits.write(codeSymbols[0]!, 8);
    if (codeSymbols.length === 2) bits.write(codeSymbols[1]!, 8);
  };
  for (const channel of symbols) simpleCode(channel); // green, red, blue
  simpleCode([255]); // alpha
  simpleCode([0]); // distance (never used)
  // Two symbols get one-bit codes, the smaller symbol 0 (canonical order); one symbol, no bits.
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = at(x, y);
      for (const [i, value] of [g, r, b].entries()) {
        if (symbols[i]!.length === 2) bits.write(value === symbols[i]![0] ? 0 : 1, 1);
      }
    }
  }
  return bits.done();
}

/** Bits packed least significant first, as VP8L reads them. */
class BitWriter {
  private readonly bytes: number[] = [];
  private current = 0;
  private used = 0;

  write(value: number, count: number): void {
    for (let i = 0; i < count; i++) {
      this.current |= ((value >>> i) & 1) << this.used;
      if (++this.used === 8) {
        this.bytes.push(this.current);
        this.current = 0;
        this.used = 0;
      }
    }
  }

  done(): Buffer {
    return Buffer.from(this.used ? [...this.bytes, this.current] : this.bytes);
  }
}
