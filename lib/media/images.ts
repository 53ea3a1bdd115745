// PNG, JPEG and WebP: pixel size (and WebP's animation length) from the first bytes.
import type { MediaInfo } from './probe';

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function probePng(head: Buffer): MediaInfo | undefined {
  if (head.length < 24 || !head.subarray(0, 8).equals(PNG_SIGNATURE)) return undefined;
  if (head.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { contentType: 'image/png', width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
}

// JPEG

export function probeJpeg(head: Buffer): MediaInfo | undefined {
  if (head.length < 4 || head[0] !== 0xff || head[1] !== 0xd8 || head[2] !== 0xff) return undefined;
  let pos = 2;
  while (pos + 4 <= head.length) {
    if (head[pos] !== 0xff) return undefined; // lost track of the segments: corrupt
    const marker = head[pos + 1]!;
    if (marker === 0xff) {
      pos++; // fill byte before a marker
      continue;
    }
    if (isStandaloneMarker(marker)) {
      pos += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // end of image or scan data before any frame header
    const length = head.readUInt16BE(pos + 2);
    if (length < 2) return undefined;
    if (isStartOfFrame(marker)) {
      if (pos + 9 > head.length) return undefined;
      return {
        contentType: 'image/jpeg',
        width: head.readUInt16BE(pos + 7),
        height: head.readUInt16BE(pos + 5),
      };
    }
    pos += 2 + length;
  }
  return undefined;
}

function isStandaloneMarker(marker: number): boolean {
  return marker === 0x01 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7);
}

/** SOF0..SOF15 (baseline, extended, progressive, lossless, arithmetic...), minus the DHT, JPG and DAC markers. */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

// WebP

export function probeWebp(head: Buffer): MediaInfo | undefined {
  if (
    head.length < 30 ||
    head.toString('latin1', 0, 4) !== 'RIFF' ||
    head.toString('latin1', 8, 12) !== 'WEBP'
  ) {
    return undefined;
  }
  const format = head.toString('latin1', 12, 16);
  const data = 20; // first chunk's payload
  if (format === 'VP8 ') {
    if (head[data + 3] !== 0x9d || head[data + 4] !== 0x01 || head[data + 5] !== 0x2a) return undefined;
    // 14-bit sizes; the top two bits are an upscaling hint
    return {
      contentType: 'image/webp',
      width: head.readUInt16LE(26) & 0x3fff,
      height: head.readUInt16LE(28) & 0x3fff,
    };
  }
  if (format === 'VP8L') {
    if (head[data] !== 0x2f) return undefined;
    const bits = head.readUInt32LE(data + 1);
    return { contentType: 'image/webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (format === 'VP8X') {
    const info: MediaInfo = {
      contentType: 'image/webp',
      width: head.readUIntLE(data + 4, 3) + 1,
      height: head.readUIntLE(data + 7, 3) + 1,
    };
    const animated = (head[data]! & 0x02) !== 0;
    const durationMs = animated ? webpAnimationMs(head) : undefined;
    if (durationMs !== undefined) info.durationMs = durationMs;
    return info;
  }
  return undefined;
}

/** Sum of the ANMF frame durations, if the whole RIFF file is in `buf`. */
function webpAnimationMs(buf: Buffer): number | undefined {
  const end = 8 + buf.readUInt32LE(4);
  if (end > buf.length) return undefined;
  let total = 0;
  for (let pos = 12; pos + 8 <= end;) {
    const size = buf.readUInt32LE(pos + 4);
    if (buf.toString('latin1', pos, pos + 4) === 'ANMF' && pos + 8 + 15 <= end) {
      total += buf.readUIntLE(pos + 8 + 12, 3);
    }
    pos += 8 + size + (size & 1); // chunks are padded to even sizes
  }
  return total;
}
