// GIF89a encoding (LZW, looping animation); the palette comes from ./palette.ts.
import { PALETTE_SIZE } from './palette';

const MIN_CODE_SIZE = 8; // 256-colour table
const MAX_CODE = 4096; // GIF codes are at most 12 bits wide
const MAX_SUB_BLOCK = 255;
const MAX_DIMENSION = 0xffff;

/**
 * Encodes an endlessly looping GIF89a animation.
 * `frames` hold one palette index per pixel (row-major, `width * height` each); `palette` is 256 RGB triples.
 * `delayCs` is the per-frame delay in hundredths of a second, either one value for all frames or one per frame.
 */
export function encodeGif(
  width: number,
  height: number,
  frames: Uint8Array[],
  palette: Uint8Array,
  delayCs: number | readonly number[],
): Buffer {
  validate(width, height, frames, palette, delayCs);
  const out = new ByteSink();
  out.bytes(Buffer.from('GIF89a', 'latin1'));
  writeLogicalScreen(out, width, height);
  out.bytes(palette);
  writeLoopExtension(out);
  const codeTable = new Int16Array(MAX_CODE << 8);
  frames.forEach((frame, i) => {
    const delay = typeof delayCs === 'number' ? delayCs : delayCs[i]!;
    writeGraphicControl(out, delay);
    writeImage(out, width, height, frame, codeTable);
  });
  out.byte(0x3b); // trailer
  return out.toBuffer();
}

function validate(
  width: number,
  height: number,
  frames: Uint8Array[],
  palette: Uint8Array,
  delayCs: number | readonly number[],
): void {
  const validSide = (n: number) => Number.isInteger(n) && n >= 1 && n <= MAX_DIMENSION;
  if (!validSide(width) || !validSide(height)) {
    throw new RangeError(`GIF size must be integers in 1..${MAX_DIMENSION}, got ${width}x${height}`);
  }
  if (frames.length === 0) throw new RangeError('a GIF needs at least one frame');
  const badFrame = frames.findIndex((f) => f.length !== width * height);
  if (badFrame >= 0) throw new RangeError(`frame ${badFrame} must hold ${width * height} pixels`);
  if (palette.length !== PALETTE_SIZE * 3) {
    throw new RangeError(`palette must hold ${PALETTE_SIZE * 3} bytes`);
  }
  const delays = typeof delayCs === 'number' ? [delayCs] : delayCs;
  if (typeof delayCs !== 'number' && delays.length !== frames.length) {
    throw new RangeError(`expected ${frames.length} frame delays, got ${delays.length}`);
  }
  if (!delays.every((d) => Number.isInteger(d) && d >= 0 && d <= 0xffff)) {
    throw new RangeError('frame delays must be integers in 0..65535 (hundredths of a second)');
  }
}

function writeLogicalScreen(out: ByteSink, width: number, height: number): void {
  out.u16(width);
  out.u16(height);
  // global colour table present, 8 bits of colour resolution, unsorted, 2^(7+1) = 256 entries
  out.byte(0x80 | (7 << 4) | 7);
  out.byte(0); // background colour index
  out.byte(0); // no pixel aspect ratio
}

function writeLoopExtension(out: ByteSink): void {
  out.bytes([0x21, 0xff, 11]);
  out.bytes(Buffer.from('NETSCAPE2.0', 'latin1'));
  out.bytes([3, 1]);
  out.u16(0); // loop forever
  out.byte(0);
}

function writeGraphicControl(out: ByteSink, delayCs: number): void {
  out.bytes([0x21, 0xf9, 4]);
  out.byte(1 << 2); // disposal 1: leave the frame in place; no transparency
  out.u16(delayCs);
  out.byte(0); // transparent colour index (unused)
  out.byte(0);
}

function writeImage(
  out: ByteSink,
  width: number,
  height: number,
  pixels: Uint8Array,
  codeTable: Int16Array,
): void {
  out.byte(0x2c);
  out.u16(0);
  out.u16(0);
  out.u16(width);
  out.u16(height);
  out.byte(0); // no local colour table, not interlaced
  out.byte(MIN_CODE_SIZE);
  const data = lzwEncode(pixels, codeTable);
  for (let offset = 0; offset < data.length; offset += MAX_SUB_BLOCK) {
    const block = data.subarray(offset, offset + MAX_SUB_BLOCK);
    out.byte(block.length);
    out.bytes(block);
  }
  out.byte(0); // block terminator
}

/**
 * Variable-width LZW as GIF wants it: codes start at 9 bits and widen whenever the next free code no longer
 * fits; when all 4096 codes are used a clear code resets the dictionary.
 * `codeTable` maps (prefix code << 8 | next index) to a code, -1 when absent; it is scratch space shared
 * across frames to avoid reallocating 2 MB each time.
 */
export function lzwEncode(pixels: Uint8Array, codeTable: Int16Array = new Int16Array(MAX_CODE << 8)): Buffer {
  const clearCode = 1 << MIN_CODE_SIZE;
  const endCode = clearCode + 1;
  const bits = new BitWriter();
  let width = MIN_CODE_SIZE + 1;
  let next = endCode + 1;
  codeTable.fill(-1);
  bits.write(clearCode, width);
  if (pixels.length === 0) {
    bits.write(endCode, width);
    return bits.finish();
  }
  let prefix = pixels[0]!;
  for (let i = 1; i < pixels.length; i++) {
    const key = (prefix << 8) | pixels[i]!;
    const code = codeTable[key]!;
    if (code >= 0) {
      prefix = code;
      continue;
    }
    bits.write(prefix, width);
    if (next === MAX_CODE) {
      bits.write(clearCode, width);
      codeTable.fill(-1);
      width = MIN_CODE_SIZE + 1;
      next = endCode + 1;
    } else {
      if (next === 1 << width) width++;
      codeTable[key] = next++;
    }
    prefix = pixels[i]!;
  }
  bits.write(prefix, width);
  // The decoder adds a dictionary entry for that last code too, and may widen before reading the end code.
  if (next === 1 << width && width < 12) width++;
  bits.write(endCode, width);
  return bits.finish();
}

/** Packs codes least-significant bit first, as GIF requires. */
class BitWriter {
  private buf = new Uint8Array(4096);
  private length = 0;
  private acc = 0;
  private accBits = 0;

  write(code: number, width: number): void {
    this.acc |= code << this.accBits;
    this.accBits += width;
    while (this.accBits >= 8) {
      this.push(this.acc & 0xff);
      this.acc >>>= 8;
      this.accBits -= 8;
    }
  }

  finish(): Buffer {
    if (this.accBits > 0) this.push(this.acc & 0xff);
    this.acc = 0;
    this.accBits = 0;
    return Buffer.from(this.buf.buffer, 0, this.length);
  }

  private push(byte: number): void {
    if (this.length === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.length++] = byte;
  }
}

class ByteSink {
  private parts: Uint8Array[] = [];
  private small: number[] = [];

  byte(b: number): void {
    this.small.push(b & 0xff);
  }

  u16(n: number): void {
    this.byte(n);
    this.byte(n >> 8);
  }

  bytes(data: Uint8Array | readonly number[]): void {
    if (data instanceof Uint8Array) {
      this.flushSmall();
      this.parts.push(data);
    } else {
      data.forEach((b) => this.byte(b));
    }
  }

  toBuffer(): Buffer {
    this.flushSmall();
    return Buffer.concat(this.parts);
  }

  private flushSmall(): void {
    if (this.small.length === 0) return;
    this.parts.push(Uint8Array.from(this.small));
    this.small = [];
  }
}
