// MP4 / QuickTime (ISO base media file format): the video track's size and the movie's length.
import type { MediaInfo } from './probe';

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

export function probeIsoMedia(head: Buffer): MediaInfo | undefined {
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
