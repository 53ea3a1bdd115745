// What a file is, from its first bytes. One file per format family: ./images.ts (PNG, JPEG, WebP),
// ./gif.ts, ./iso-media.ts (MP4, QuickTime).
import { probeGif } from './gif';
import { PNG_SIGNATURE, probeJpeg, probePng, probeWebp } from './images';
import { probeIsoMedia } from './iso-media';

export { GifDurationCounter, gifDurationMs } from './gif';

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
