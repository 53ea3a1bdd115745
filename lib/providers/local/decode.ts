// Decoding the input images the local renderer starts from: PNG here (RFC 2083), JPEG through jpeg-js.
// WebP is accepted by uploads but has no decoder here; the local provider refuses it (invalid_input).
import { decode as decodeJpegFile } from 'jpeg-js';
import { crc32, inflateSync } from 'node:zlib';

/** An input the renderer cannot use: not PNG or JPEG, corrupt, truncated, or over the pixel cap. */
export class InputImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputImageError';
  }
}

export interface DecodedImage {
  width: number;
  height: number;
  /** 8-bit RGBA, row-major, not premultiplied. */
  rgba: Uint8Array;
}

export type InputFormat = 'png' | 'jpeg' | 'webp';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The format by magic bytes, or undefined for anything else. */
export function inputFormatOf(bytes: Uint8Array): InputFormat | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length >= 8 && buf.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png';
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (
    buf.length >= 12 &&
    buf.toString('latin1', 0, 4) === 'RIFF' &&
    buf.toString('latin1', 8, 12) === 'WEBP'
  ) {
    return 'webp';
  }
  return undefined;
}

/** Decodes a PNG or JPEG to RGBA; refuses anything else, and anything over `maxPixels`, before decoding it. */
export function decodeImage(bytes: Uint8Array, opts: { maxPixels: number }): DecodedImage {
  const format = inputFormatOf(bytes);
  if (format === 'png') return decodePng(bytes, opts);
  if (format === 'jpeg') return decodeJpeg(bytes, opts);
  if (format === 'webp') {
    throw new InputImageError('the local renderer cannot decode WebP images; use a PNG or JPEG input');
  }
  throw new InputImageError('the input is not a PNG or JPEG image');
}

const COLOR_GRAY = 0;
const COLOR_RGB = 2;
const COLOR_PALETTE = 3;
const COLOR_GRAY_ALPHA = 4;
const COLOR_RGBA = 6;
const CHANNELS: Record<number, number> = {
  [COLOR_GRAY]: 1,
  [COLOR_RGB]: 3,
  [COLOR_PALETTE]: 1,
  [COLOR_GRAY_ALPHA]: 2,
  [COLOR_RGBA]: 4,
};

interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
}

export function decodePng(bytes: Uint8Array, opts: { maxPixels: number }): DecodedImage {
  const file = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!file.subarray(0, 8).equals(PNG_SIGNATURE)) throw new InputImageError('not a PNG file');
  let header: PngHeader | undefined;
  let palette: Buffer | undefined;
  let transparency: Buffer | undefined;
  const idat: Buffer[] = [];
  let ended = false;
  for (let pos = 8; !ended;) {
    if (pos + 12 > file.length) throw new InputImageError('the PNG is truncated (no IEND chunk)');
    const length = file.readUInt32BE(pos);
    const type = file.toString('latin1', pos + 4, pos + 8);
    if (pos + 12 + length > file.length) throw new InputImageError(`the PNG is truncated (in ${type})`);
    const data = file.subarray(pos + 8, pos + 8 + length);
    if (file.readUInt32BE(pos + 8 + length) !== crc32(file.subarray(pos + 4, pos + 8 + length))) {
      throw new InputImageError(`the PNG is corrupt (bad CRC in ${type})`);
    }
    if (!header && type !== 'IHDR') throw new InputImageError('the PNG does not start with IHDR');
    if (type === 'IHDR') header = readHeader(data, opts.maxPixels);
    else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') transparency = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') ended = true;
    pos += 12 + length;
  }
  if (!header) throw new InputImageError('the PNG has no IHDR');
  if (header.colorType === COLOR_PALETTE && !palette) throw new InputImageError('the PNG has no palette');
  const bytesPerPixel = (CHANNELS[header.colorType]! * header.bitDepth) / 8;
  const stride = header.width * bytesPerPixel;
  const expected = header.height * (stride + 1);
  let raw: Buffer;
  try {
    // The cap stops a small deflate stream from expanding without bound.
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected });
  } catch {
    throw new InputImageError('the PNG image data is corrupt or larger than its header says');
  }
  if (raw.length < expected) throw new InputImageError('the PNG image data is truncated');
  const samples = unfilter(raw, header.height, stride, bytesPerPixel);
  return { width: header.width, height: header.height, rgba: toRgba(samples, header, palette, transparency) };
}

function readHeader(data: Buffer, maxPixels: number): PngHeader {
  if (data.length !== 13) throw new InputImageError('the PNG header is malformed');
  const width = data.readUInt32BE(0);
  const height = data.readUInt32BE(4);
  const [bitDepth, colorType, compression, filter, interlace] = [...data.subarray(8, 13)] as number[];
  if (width === 0 || height === 0) throw new InputImageError('the PNG has no pixels');
  if (width * height > maxPixels) {
    throw new InputImageError(`the image has ${width}x${height} pixels, more than ${maxPixels}`);
  }
  if (CHANNELS[colorType!] === undefined) throw new InputImageError(`unknown PNG colour type ${colorType}`);
  const depthOk = bitDepth === 8 || (bitDepth === 16 && colorType !== COLOR_PALETTE);
  if (!depthOk) {
    throw new InputImageError(`PNG bit depth ${bitDepth} is not supported here; use 8 bits per channel`);
  }
  if (compression !== 0 || filter !== 0) throw new InputImageError('the PNG uses an unknown compression');
  if (interlace !== 0) {
    throw new InputImageError('interlaced (Adam7) PNGs are not supported here; save it non-interlaced');
  }
  return { width, height, bitDepth: bitDepth!, colorType: colorType! };
}

/** Undoes the per-row filters (RFC 2083 §6): None, Sub, Up, Average, Paeth. */
function unfilter(raw: Buffer, height: number, stride: number, bpp: number): Uint8Array {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[row + i - bpp]! : 0;
      const b = y > 0 ? out[prev + i]! : 0;
      let predictor: number;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) >> 1;
          break;
        case 4:
          predictor = paeth(a, b, i >= bpp && y > 0 ? out[prev + i - bpp]! : 0);
          break;
        default:
          throw new InputImageError(`the PNG is corrupt (filter type ${filter} on row ${y})`);
      }
      out[row + i] = (raw[src + i]! + predictor) & 0xff;
    }
  }
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

function toRgba(
  samples: Uint8Array,
  { width, height, bitDepth, colorType }: PngHeader,
  palette: Buffer | undefined,
  transparency: Buffer | undefined,
): Uint8Array {
  const channels = CHANNELS[colorType]!;
  const step = bitDepth / 8; // 16-bit samples keep their high byte
  const sample = (p: number, c: number) => samples[(p * channels + c) * step]!;
  // tRNS for gray/RGB names one colour (in 16-bit units) that is fully transparent.
  const key =
    transparency && (colorType === COLOR_GRAY || colorType === COLOR_RGB)
      ? Array.from({ length: channels }, (_, c) => transparency.readUInt16BE(c * 2))
      : undefined;
  const keyMatches = (p: number) =>
    key!.every((k, c) => {
      const i = (p * channels + c) * step;
      return (step === 2 ? (samples[i]! << 8) | samples[i + 1]! : samples[i]!) === k;
    });
  const out = new Uint8Array(width * height * 4);
  for (let p = 0, o = 0; p < width * height; p++, o += 4) {
    switch (colorType) {
      case COLOR_GRAY:
        out[o] = out[o + 1] = out[o + 2] = sample(p, 0);
        out[o + 3] = key && keyMatches(p) ? 0 : 255;
        break;
      case COLOR_GRAY_ALPHA:
        out[o] = out[o + 1] = out[o + 2] = sample(p, 0);
        out[o + 3] = sample(p, 1);
        break;
      case COLOR_RGB:
        out[o] = sample(p, 0);
        out[o + 1] = sample(p, 1);
        out[o + 2] = sample(p, 2);
        out[o + 3] = key && keyMatches(p) ? 0 : 255;
        break;
      case COLOR_RGBA:
        out[o] = sample(p, 0);
        out[o + 1] = sample(p, 1);
        out[o + 2] = sample(p, 2);
        out[o + 3] = sample(p, 3);
        break;
      default: {
        const index = samples[p]!;
        if (index * 3 + 2 >= palette!.length) {
          throw new InputImageError(`the PNG is corrupt (palette index ${index} out of range)`);
        }
        out[o] = palette![index * 3]!;
        out[o + 1] = palette![index * 3 + 1]!;
        out[o + 2] = palette![index * 3 + 2]!;
        out[o + 3] = transparency && index < transparency.length ? transparency[index]! : 255;
      }
    }
  }
  return out;
}

/** jpeg-js allocates as it goes; this bounds it to the pixels allowed plus its working tables. */
const JPEG_MEMORY_OVERHEAD_MB = 64;

export function decodeJpeg(bytes: Uint8Array, opts: { maxPixels: number }): DecodedImage {
  let image;
  try {
    image = decodeJpegFile(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      // Tolerant decoding fills a truncated scan with grey instead of failing: we want the failure.
      tolerantDecoding: false,
      maxResolutionInMP: opts.maxPixels / 1e6,
      maxMemoryUsageInMB: Math.ceil((opts.maxPixels * 8) / 2 ** 20) + JPEG_MEMORY_OVERHEAD_MB,
    });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new InputImageError(`the JPEG cannot be decoded: ${reason}`);
  }
  if (image.width === 0 || image.height === 0) throw new InputImageError('the JPEG has no pixels');
  return { width: image.width, height: image.height, rgba: image.data };
}
