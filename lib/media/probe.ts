export interface MediaInfo {
  contentType: string;
  width: number;
  height: number;
  /** Playback length, for animations and videos, when it can be read from the bytes given. */
  durationMs?: number;
}

/**
 * Identifies an image or video from its first bytes (callers pass at most the first 64 KiB) and reads its
 * pixel size: PNG, GIF, JPEG, WebP and MP4/QuickTime.
 *
 * Returns undefined for an unknown format, and also when the format is known but its size is not within
 * `head` (a JPEG whose frame header follows a huge EXIF block, an MP4 whose `moov` box sits at the end).
 *
 * `durationMs` is set only when the whole file is in `head`: for animated GIF and animated WebP it is the
 * sum of the frame delays, which needs every frame. For GIFs too large for that, stream the full file
 * through a {@link GifDurationCounter}. For MP4 it comes from the movie header, so `head` only has to reach
 * the end of the `moov` box.
 */
export function probeMedia(head: Buffer): MediaInfo | undefined {
  return probePng(head) ?? probeGif(head) ?? probeJpeg(head) ?? probeWebp(head) ?? probeIsoMedia(head);
}

/**
 * The only content types Velro stores and serves as outputs: media a browser shows and never runs.
 * Anything else (HTML, SVG, script, unknown bytes) is refused at storage time.
 */
export const SERVABLE_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'image/png',
  'image/jpeg',
  'image/webp',
  'image/gif',
  'video/mp4',
  'video/quicktime',
  'video/webm',
]);

/**
 * The media type of `head` by its magic bytes alone, for files whose size {@link probeMedia} cannot
 * read from the first bytes (an MP4 whose `moov` box is at the end, a JPEG behind a large EXIF block,
 * WebM); undefined when it is none of {@link SERVABLE_MEDIA_TYPES}.
 */
export function sniffMediaType(head: Buffer): string | undefined {
  if (head.length >= 8 && head.subarray(0, 8).equals(PNG_SIGNATURE)) return 'image/png';
  if (head.length >= 6 && /^GIF8[79]a$/.test(head.toString('latin1', 0, 6))) return 'image/gif';
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'image/jpeg';
  if (
    head.length >= 12 &&
    head.toString('latin1', 0, 4) === 'RIFF' &&
    head.toString('latin1', 8, 12) === 'WEBP'
  )
    return 'image/webp';
  if (head.length >= 12 && head.toString('latin1', 4, 8) === 'ftyp') {
    return head.toString('latin1', 8, 12) === 'qt  ' ? 'video/quicktime' : 'video/mp4';
  }
  // EBML header whose DocType is "webm" (Matroska proper is not a web format).
  if (head.length >= 4 && head.readUInt32BE(0) === 0x1a45dfa3 && head.subarray(0, 64).includes('webm'))
    return 'video/webm';
  return undefined;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function probePng(head: Buffer): MediaInfo | undefined {
  if (head.length < 24 || !head.subarray(0, 8).equals(PNG_SIGNATURE)) return undefined;
  if (head.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { contentType: 'image/png', width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
}

// ---------------------------------------------------------------------------------------------------------
// GIF

function probeGif(head: Buffer): MediaInfo | undefined {
  if (head.length < 10 || !isGifHeader(head)) return undefined;
  const info: MediaInfo = {
    contentType: 'image/gif',
    width: head.readUInt16LE(6),
    height: head.readUInt16LE(8),
  };
  const counter = new GifDurationCounter();
  counter.push(head);
  if (counter.complete && counter.frameCount > 1) info.durationMs = counter.durationMs;
  return info;
}

function isGifHeader(buf: Buffer): boolean {
  const magic = buf.toString('latin1', 0, 6);
  return magic === 'GIF87a' || magic === 'GIF89a';
}

/** Total frame delay of a complete GIF file, or undefined when it is not one (truncated, malformed). */
export function gifDurationMs(gif: Buffer): number | undefined {
  const counter = new GifDurationCounter();
  counter.push(gif);
  return counter.complete ? counter.durationMs : undefined;
}

type GifState = 'header' | 'block' | 'extension' | 'graphicControl' | 'image' | 'lzwMinimum' | 'subBlocks';

/**
 * Sums the frame delays of a GIF fed in chunks of any size, holding only a few bytes between pushes, so a
 * large animation can be measured while it streams to storage. Delays are reported as written: browsers
 * stretch delays of 0-1 cs to 10 cs, and that is left to whoever displays it.
 */
export class GifDurationCounter {
  private state: GifState = 'header';
  private pending: Buffer = Buffer.alloc(0);
  private skip = 0;
  private delayCs = 0;
  private frames = 0;
  private finished = false;
  private broken = false;

  push(chunk: Buffer): void {
    if (this.finished || this.broken) return;
    const buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let pos = 0;
    while (!this.finished && !this.broken) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length - pos);
        pos += n;
        this.skip -= n;
        if (this.skip > 0) break;
      }
      const used = this.step(buf, pos);
      if (used === 0) break; // needs more bytes
      pos += used;
    }
    // Only an incomplete structure header (a few bytes) is ever carried over; nothing once parsing has ended.
    this.pending = this.finished || this.broken ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
  }

  /** Sum of the frame delays seen so far. */
  get durationMs(): number {
    return this.delayCs * 10;
  }

  get frameCount(): number {
    return this.frames;
  }

  /** True once the trailer byte has been read; the counts are then final. */
  get complete(): boolean {
    return this.finished;
  }

  /** Parses one structure at `pos`; returns how many bytes it consumed, 0 if it needs more. */
  private step(buf: Buffer, pos: number): number {
    const available = buf.length - pos;
    switch (this.state) {
      case 'header': {
        if (available < 13) return 0;
        if (!isGifHeader(buf.subarray(pos, pos + 6))) return this.fail();
        this.skip = colourTableSize(buf[pos + 10]!);
        this.state = 'block';
        return 13;
      }
      case 'block': {
        if (available < 1) return 0;
        const introducer = buf[pos]!;
        if (introducer === 0x3b) this.finished = true;
        else if (introducer === 0x21) this.state = 'extension';
        else if (introducer === 0x2c) this.state = 'image';
        else return this.fail();
        return 1;
      }
      case 'extension': {
        if (available < 1) return 0;
        this.state = buf[pos] === 0xf9 ? 'graphicControl' : 'subBlocks';
        return 1;
      }
      case 'graphicControl': {
        // block size (4), packed fields, delay (u16 LE), transparent index; the terminator is read as a sub-block
        if (available < 5) return 0;
        if (buf[pos] !== 4) return this.fail();
        this.delayCs += buf.readUInt16LE(pos + 2);
        this.state = 'subBlocks';
        return 5;
      }
      case 'image': {
        // position and size (8 bytes) and packed fields; a local colour table may follow
        if (available < 9) return 0;
        this.frames++;
        this.skip = colourTableSize(buf[pos + 8]!);
        this.state = 'lzwMinimum';
        return 9;
      }
      case 'lzwMinimum': {
        if (available < 1) return 0;
        this.state = 'subBlocks';
        return 1;
      }
      case 'subBlocks': {
        if (available < 1) return 0;
        const size = buf[pos]!;
        if (size === 0) this.state = 'block';
        else this.skip = size;
        return 1;
      }
    }
  }

  private fail(): number {
    this.broken = true;
    return 0;
  }
}

/** Bytes of the colour table announced by a GIF packed-fields byte (logical screen or image descriptor). */
function colourTableSize(packed: number): number {
  return packed & 0x80 ? 3 * (1 << ((packed & 0x07) + 1)) : 0;
}

// ---------------------------------------------------------------------------------------------------------
// JPEG

function probeJpeg(head: Buffer): MediaInfo | undefined {
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

// ---------------------------------------------------------------------------------------------------------
// WebP

function probeWebp(head: Buffer): MediaInfo | undefined {
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

// ---------------------------------------------------------------------------------------------------------
// MP4 / QuickTime (ISO base media file format)

/** Brands of ISO-BMFF still-image formats (HEIF, AVIF), which share MP4's container but are not videos. */
const IMAGE_BRANDS = new Set([
  'avif',
  'avis',
  'heic',
  'heix',
  'heim',
  'heis',
  'hevc',
  'hevx',
  'mif1',
  'msf1',
]);

interface Box {
  type: string;
  start: number; // first payload byte
  end: number; // one past the last byte; may lie beyond the buffer when truncated
}

function probeIsoMedia(head: Buffer): MediaInfo | undefined {
  if (head.length < 12 || head.toString('latin1', 4, 8) !== 'ftyp') return undefined;
  const brand = head.toString('latin1', 8, 12);
  if (IMAGE_BRANDS.has(brand)) return undefined;
  const moov = childBoxes(head, 0, head.length).find((box) => box.type === 'moov');
  if (!moov || moov.end > head.length) return undefined;
  const children = childBoxes(head, moov.start, moov.end);
  const size = children
    .filter((box) => box.type === 'trak')
    .map((trak) => trackSize(head, trak))
    .find((s) => s !== undefined && s.width > 0 && s.height > 0);
  if (!size) return undefined;
  const info: MediaInfo = { contentType: brand === 'qt  ' ? 'video/quicktime' : 'video/mp4', ...size };
  const mvhd = children.find((box) => box.type === 'mvhd');
  const durationMs = mvhd ? movieDurationMs(head, mvhd) : undefined;
  if (durationMs !== undefined) info.durationMs = durationMs;
  return info;
}

function childBoxes(buf: Buffer, start: number, end: number): Box[] {
  const boxes: Box[] = [];
  let pos = start;
  while (pos + 8 <= Math.min(end, buf.length)) {
    let size = buf.readUInt32BE(pos);
    let header = 8;
    if (size === 1) {
      if (pos + 16 > buf.length) break;
      size = Number(buf.readBigUInt64BE(pos + 8));
      header = 16;
    } else if (size === 0) {
      size = end - pos; // extends to the end of the enclosing box (or file)
    }
    if (size < header) break;
    boxes.push({ type: buf.toString('latin1', pos + 4, pos + 8), start: pos + header, end: pos + size });
    pos += size;
  }
  return boxes;
}

/** Presentation size from a track header (16.16 fixed point); audio tracks report 0x0. */
function trackSize(buf: Buffer, trak: Box): { width: number; height: number } | undefined {
  const tkhd = childBoxes(buf, trak.start, trak.end).find((box) => box.type === 'tkhd');
  if (!tkhd) return undefined;
  const offset = tkhd.start + (buf[tkhd.start] === 1 ? 88 : 76);
  if (offset + 8 > Math.min(tkhd.end, buf.length)) return undefined;
  return {
    width: Math.round(buf.readUInt32BE(offset) / 65536),
    height: Math.round(buf.readUInt32BE(offset + 4) / 65536),
  };
}

function movieDurationMs(buf: Buffer, mvhd: Box): number | undefined {
  const v1 = buf[mvhd.start] === 1;
  if (mvhd.start + (v1 ? 32 : 20) > Math.min(mvhd.end, buf.length)) return undefined;
  const timescale = buf.readUInt32BE(mvhd.start + (v1 ? 20 : 12));
  const duration = v1 ? Number(buf.readBigUInt64BE(mvhd.start + 24)) : buf.readUInt32BE(mvhd.start + 16);
  const unknown = v1 ? duration >= Number.MAX_SAFE_INTEGER : duration === 0xffffffff;
  if (timescale === 0 || unknown) return undefined;
  return Math.round((duration * 1000) / timescale);
}
