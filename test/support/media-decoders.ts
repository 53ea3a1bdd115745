// Decoders of the local renderer's outputs, written from the PNG and GIF specifications, independently of
// the encoders under test, so a bug shared by both sides would have to be made twice. (Pillow is not
// installed here.) Strict: they fail the test on anything the encoders should not produce.
import { crc32, inflateSync } from 'node:zlib';
import { expect } from 'vitest';

export interface DecodedPng {
  width: number;
  height: number;
  rgba: Uint8Array;
  chunkTypes: string[];
}

export function decodePng(file: Buffer): DecodedPng {
  expect([...file.subarray(0, 8)]).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
  const chunkTypes: string[] = [];
  const idat: Buffer[] = [];
  let header: Buffer | undefined;
  let pos = 8;
  while (pos < file.length) {
    const length = file.readUInt32BE(pos);
    const type = file.toString('latin1', pos + 4, pos + 8);
    const data = file.subarray(pos + 8, pos + 8 + length);
    expect(file.readUInt32BE(pos + 8 + length), `CRC of ${type}`).toBe(
      crc32(file.subarray(pos + 4, pos + 8 + length)),
    );
    chunkTypes.push(type);
    if (type === 'IHDR') header = data;
    if (type === 'IDAT') idat.push(data);
    pos += 12 + length;
  }
  expect(pos).toBe(file.length);
  expect(chunkTypes[0]).toBe('IHDR');
  expect(chunkTypes.at(-1)).toBe('IEND');
  if (!header) throw new Error('no IHDR');
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  expect([...header.subarray(8)]).toEqual([8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, adaptive, no interlace
  return { width, height, rgba: unfilter(inflateSync(Buffer.concat(idat)), width, height), chunkTypes };
}

function unfilter(raw: Buffer, width: number, height: number): Uint8Array {
  const stride = width * 4;
  expect(raw.length).toBe(height * (stride + 1));
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let i = 0; i < stride; i++) {
      const left = i >= 4 ? out[y * stride + i - 4]! : 0;
      const up = y > 0 ? out[(y - 1) * stride + i]! : 0;
      const upLeft = i >= 4 && y > 0 ? out[(y - 1) * stride + i - 4]! : 0;
      const predictors = [0, left, up, (left + up) >> 1, paethPredictor(left, up, upLeft)];
      const predictor = predictors[filter];
      if (predictor === undefined) throw new Error(`bad filter type ${filter} on row ${y}`);
      out[y * stride + i] = (raw[y * (stride + 1) + 1 + i]! + predictor) & 0xff;
    }
  }
  return out;
}

function paethPredictor(a: number, b: number, c: number): number {
  const p = a + b - c;
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

export interface DecodedGif {
  width: number;
  height: number;
  palette: Buffer;
  loops: number | undefined;
  frames: { pixels: Uint8Array; delayCs: number; clearCodes: number }[];
}

export function decodeGif(file: Buffer): DecodedGif {
  expect(file.toString('latin1', 0, 6)).toBe('GIF89a');
  const width = file.readUInt16LE(6);
  const height = file.readUInt16LE(8);
  const packed = file[10]!;
  expect(packed & 0x80).toBe(0x80); // global colour table
  const tableBytes = 3 * (1 << ((packed & 7) + 1));
  const palette = file.subarray(13, 13 + tableBytes);
  const gif: DecodedGif = { width, height, palette, loops: undefined, frames: [] };
  let pos = 13 + tableBytes;
  let delayCs = 0;
  for (;;) {
    const introducer = file[pos++];
    if (introducer === 0x3b) break;
    if (introducer === 0x21) {
      const label = file[pos++]!;
      const { data, next } = readSubBlocks(file, pos);
      if (label === 0xf9) delayCs = data.readUInt16LE(1);
      const isLoopExtension = label === 0xff && data.toString('latin1', 0, 11) === 'NETSCAPE2.0';
      if (isLoopExtension) gif.loops = data.readUInt16LE(12);
      pos = next;
    } else if (introducer === 0x2c) {
      const [x, y, w, h] = [0, 2, 4, 6].map((o) => file.readUInt16LE(pos + o));
      expect([x, y, w, h]).toEqual([0, 0, width, height]);
      expect(file[pos + 8]).toBe(0); // no local table, not interlaced
      const minCodeSize = file[pos + 9]!;
      const { data, next } = readSubBlocks(file, pos + 10);
      gif.frames.push({ ...lzwDecode(data, minCodeSize, w! * h!), delayCs });
      pos = next;
    } else {
      throw new Error(`unexpected block 0x${introducer?.toString(16)} at ${pos - 1}`);
    }
  }
  expect(pos).toBe(file.length);
  return gif;
}

function readSubBlocks(file: Buffer, start: number): { data: Buffer; next: number } {
  const parts: Buffer[] = [];
  let pos = start;
  for (let size = file[pos]!; size !== 0; size = file[pos]!) {
    parts.push(file.subarray(pos + 1, pos + 1 + size));
    pos += 1 + size;
  }
  return { data: Buffer.concat(parts), next: pos + 1 };
}

/**
 * GIF LZW decoder. Strict on purpose: every code must be known or the next one to be defined, the data must
 * end with the end code, padded only to the byte boundary, and yield exactly `pixelCount` pixels.
 */
export function lzwDecode(data: Buffer, minCodeSize: number, pixelCount: number) {
  const clear = 1 << minCodeSize;
  const end = clear + 1;
  const prefix = new Int32Array(4096);
  const suffix = new Uint8Array(4096);
  const first = new Uint8Array(4096);
  for (let i = 0; i < clear; i++) [prefix[i], suffix[i], first[i]] = [-1, i, i];
  const pixels: number[] = [];
  let width = minCodeSize + 1;
  let next = end + 1;
  let previous = -1;
  let clearCodes = 0;
  let bitPos = 0;
  const readCode = () => {
    if (bitPos + width > data.length * 8) throw new Error('LZW data ended without an end code');
    let code = 0;
    for (let b = 0; b < width; b++, bitPos++) code |= ((data[bitPos >> 3]! >> (bitPos & 7)) & 1) << b;
    return code;
  };
  const emit = (code: number) => {
    const start = pixels.length;
    for (let c = code; c !== -1; c = prefix[c]!) pixels.push(suffix[c]!);
    pixels.push(...pixels.splice(start).reverse());
  };
  for (;;) {
    const code = readCode();
    if (code === clear) {
      [width, next, previous] = [minCodeSize + 1, end + 1, -1];
      clearCodes++;
      continue;
    }
    if (code === end) break;
    if (previous === -1) {
      if (code >= clear) throw new Error(`code ${code} right after a clear`);
      emit(code);
    } else {
      if (code > next) throw new Error(`code ${code} beyond the next free code ${next}`);
      const firstOfCode = code === next ? first[previous]! : first[code]!;
      if (next < 4096) {
        [prefix[next], suffix[next], first[next]] = [previous, firstOfCode, first[previous]!];
        next++;
      }
      emit(code);
      if (next === 1 << width && width < 12) width++;
    }
    previous = code;
  }
  expect(Math.ceil(bitPos / 8), 'bytes after the end code').toBe(data.length);
  expect(pixels.length).toBe(pixelCount);
  return { pixels: Uint8Array.from(pixels), clearCodes };
}
