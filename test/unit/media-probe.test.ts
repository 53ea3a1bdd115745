import { describe, expect, it } from 'vitest';
import { GifDurationCounter, gifDurationMs, probeMedia } from '../../lib/media/probe';
import { encodeGif } from '../../lib/providers/local/gif';
import { renderAnimation, renderImage } from '../../lib/providers/local/render';

const HEAD_BYTES = 64 * 1024;

function segment(marker: number, payload: number[]): number[] {
  const length = payload.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...payload];
}

/** SOF payload: precision, height, width, then one 3-byte entry per component. */
function sof(width: number, height: number): number[] {
  return [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0];
}

function jpeg(...segments: number[][]): Buffer {
  return Buffer.from([0xff, 0xd8, ...segments.flat(), 0xff, 0xda, 0, 2]);
}

function riff(chunkType: string, payload: number[], extraChunks: Buffer[] = []): Buffer {
  const first = chunk(chunkType, Buffer.from(payload));
  const body = Buffer.concat([Buffer.from('WEBP'), first, ...extraChunks]);
  const header = Buffer.alloc(8);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body]);
}

function chunk(type: string, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.write(type, 0, 'latin1');
  header.writeUInt32LE(payload.length, 4);
  return Buffer.concat([header, payload, Buffer.alloc(payload.length & 1)]);
}

function u24(n: number): number[] {
  return [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff];
}

function box(type: string, ...payload: Buffer[]): Buffer {
  const body = Buffer.concat(payload);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length, 0);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

function mvhd(timescale: number, duration: number): Buffer {
  const b = Buffer.alloc(100); // version 0: flags, two times, timescale, duration, rate, volume, matrix...
  b.writeUInt32BE(timescale, 12);
  b.writeUInt32BE(duration, 16);
  return box('mvhd', b);
}

function tkhd(width: number, height: number): Buffer {
  const b = Buffer.alloc(84); // version 0: width and height are 16.16 fixed point at 76 and 80
  b.writeUInt32BE(width * 65536, 76);
  b.writeUInt32BE(height * 65536, 80);
  return box('tkhd', b);
}

const ftyp = (brand: string) => box('ftyp', Buffer.from(`${brand}\0\0\0\0isomiso2`, 'latin1'));

describe('probeMedia on renderer output', () => {
  it('reads a PNG', () => {
    const media = renderImage({ prompt: 'probe me', seed: 1, width: 640, height: 360 });
    expect(probeMedia(media.bytes.subarray(0, HEAD_BYTES))).toEqual({
      contentType: 'image/png',
      width: 640,
      height: 360,
    });
  });

  it('reads a GIF, with its duration when the whole file is given', () => {
    const media = renderAnimation({
      prompt: 'probe me',
      seed: 1,
      width: 1280,
      height: 720,
      durationSeconds: 3,
    });
    expect(media.bytes.length).toBeGreaterThan(HEAD_BYTES);
    expect(probeMedia(media.bytes.subarray(0, HEAD_BYTES))).toEqual({
      contentType: 'image/gif',
      width: 320,
      height: 180,
    });
    expect(probeMedia(media.bytes)).toEqual({
      contentType: 'image/gif',
      width: 320,
      height: 180,
      durationMs: 3000,
    });
    expect(gifDurationMs(media.bytes)).toBe(3000);
    expect(gifDurationMs(media.bytes.subarray(0, media.bytes.length - 1))).toBeUndefined();
  });

  it('counts GIF duration over a stream split at arbitrary points', () => {
    const media = renderAnimation({
      prompt: 'stream',
      seed: 2,
      width: 64,
      height: 48,
      durationSeconds: 2,
      fps: 5,
    });
    const counter = new GifDurationCounter();
    const sizes = [1, 2, 3, 5, 7, 13, 64, 255, 256, 4096];
    for (let pos = 0, k = 0; pos < media.bytes.length; k++) {
      const size = sizes[k % sizes.length]!;
      expect(counter.complete).toBe(false);
      counter.push(media.bytes.subarray(pos, pos + size));
      pos += size;
    }
    expect(counter.complete).toBe(true);
    expect(counter.frameCount).toBe(10);
    expect(counter.durationMs).toBe(2000);
  });

  it('gives a single-frame GIF no duration', () => {
    const palette = new Uint8Array(768);
    const gif = encodeGif(3, 2, [new Uint8Array(6)], palette, 0);
    expect(probeMedia(gif)).toEqual({ contentType: 'image/gif', width: 3, height: 2 });
  });
});

describe('probeMedia on hand-made headers', () => {
  it('reads baseline and progressive JPEG frame headers after other segments', () => {
    const app0 = segment(0xe0, [...Buffer.from('JFIF\0'), 1, 1, 0, 0, 1, 0, 1, 0, 0]);
    const exif = segment(0xe1, [...Buffer.from('Exif\0\0'), ...new Array(3000).fill(0)]);
    const dqt = segment(0xdb, new Array(65).fill(1));
    expect(probeMedia(jpeg(app0, dqt, segment(0xc0, sof(640, 480))))).toEqual({
      contentType: 'image/jpeg',
      width: 640,
      height: 480,
    });
    expect(probeMedia(jpeg(exif, [0xff], segment(0xc2, sof(4032, 3024))))).toMatchObject({
      width: 4032,
      height: 3024,
    });
    expect(probeMedia(jpeg(app0, segment(0xc1, sof(1, 65535))))).toMatchObject({ width: 1, height: 65535 });
  });

  it('does not mistake a Huffman table for a frame header, and gives up when no frame header is in view', () => {
    const dht = segment(0xc4, new Array(20).fill(0));
    expect(probeMedia(jpeg(dht, segment(0xc0, sof(10, 20))))).toMatchObject({ width: 10, height: 20 });
    expect(probeMedia(jpeg(dht))).toBeUndefined();
    const bigExif = segment(0xe1, new Array(40_000).fill(0));
    const truncated = jpeg(bigExif, bigExif, segment(0xc0, sof(10, 20)));
    expect(probeMedia(truncated)).toMatchObject({ width: 10, height: 20 });
    expect(probeMedia(truncated.subarray(0, HEAD_BYTES))).toBeUndefined();
  });

  it('reads lossy (VP8), lossless (VP8L) and extended (VP8X) WebP', () => {
    const vp8 = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x07 | 0x40, 0x38, 0x04, 0, 0]; // 1920x1080, scale bits set
    expect(probeMedia(riff('VP8 ', vp8))).toEqual({ contentType: 'image/webp', width: 1920, height: 1080 });

    const bits = (800 - 1) | ((600 - 1) << 14) | (1 << 28);
    const vp8l = [0x2f, bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, bits >>> 24, 0, 0, 0, 0, 0];
    expect(probeMedia(riff('VP8L', vp8l))).toEqual({ contentType: 'image/webp', width: 800, height: 600 });

    const vp8x = [0x10, 0, 0, 0, ...u24(4095), ...u24(2303)];
    expect(probeMedia(riff('VP8X', vp8x))).toEqual({ contentType: 'image/webp', width: 4096, height: 2304 });
  });

  it('sums the frame durations of a complete animated WebP', () => {
    const anmf = (ms: number) =>
      chunk('ANMF', Buffer.from([...u24(0), ...u24(0), ...u24(99), ...u24(99), ...u24(ms), 0]));
    const file = riff(
      'VP8X',
      [0x02, 0, 0, 0, ...u24(99), ...u24(99)],
      [chunk('ANIM', Buffer.alloc(6)), anmf(40), anmf(60)],
    );
    expect(probeMedia(file)).toEqual({ contentType: 'image/webp', width: 100, height: 100, durationMs: 100 });
    expect(probeMedia(file.subarray(0, file.length - 4))).toEqual({
      contentType: 'image/webp',
      width: 100,
      height: 100,
    });
  });

  it('reads MP4 size and duration from the moov box, skipping audio tracks', () => {
    const moov = box('moov', mvhd(600, 3000), box('trak', tkhd(0, 0)), box('trak', tkhd(1280, 720)));
    const file = Buffer.concat([ftyp('isom'), moov, box('mdat', Buffer.alloc(1000))]);
    expect(probeMedia(file)).toEqual({
      contentType: 'video/mp4',
      width: 1280,
      height: 720,
      durationMs: 5000,
    });
    const mov = Buffer.concat([ftyp('qt  '), moov]);
    expect(probeMedia(mov)).toMatchObject({ contentType: 'video/quicktime', width: 1280 });
  });

  it('gives up on MP4s whose moov box is not in the head, and on HEIF/AVIF images', () => {
    const moov = box('moov', mvhd(1000, 1000), box('trak', tkhd(640, 480)));
    const moovLast = Buffer.concat([ftyp('isom'), box('mdat', Buffer.alloc(HEAD_BYTES)), moov]);
    expect(probeMedia(moovLast.subarray(0, HEAD_BYTES))).toBeUndefined();
    expect(probeMedia(moovLast)).toMatchObject({ width: 640, height: 480, durationMs: 1000 });
    expect(probeMedia(Buffer.concat([ftyp('avif'), moov]))).toBeUndefined();
  });

  it('returns undefined for unknown or truncated data', () => {
    expect(probeMedia(Buffer.alloc(0))).toBeUndefined();
    expect(probeMedia(Buffer.from('hello, this is not an image at all'))).toBeUndefined();
    expect(probeMedia(Buffer.from([0x89, 0x50, 0x4e, 0x47]))).toBeUndefined();
    expect(probeMedia(Buffer.from('GIF89a'))).toBeUndefined();
    expect(probeMedia(Buffer.from([0xff, 0xd8, 0xff]))).toBeUndefined();
  });
});
