// GIF: pixel size from the header, and the total frame delay (the whole file, or streamed).
import type { MediaInfo } from './probe';

export function probeGif(head: Buffer): MediaInfo | undefined {
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
