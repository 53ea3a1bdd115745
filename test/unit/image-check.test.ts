import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkImage, type ImageCheck } from '../../lib/media/image-check';
import {
  BLUE,
  GREEN,
  jpegImage,
  pngImage,
  quadrants,
  RED,
  vp8l,
  webpFile,
  webpImage,
  WHITE,
} from '../support/images';

const MAX = 40_000_000;
const check = (bytes: Buffer, declaredType?: string, maxPixels = MAX) =>
  checkImage(bytes, { maxPixels, declaredType });
const reasonOf = (result: ImageCheck) => (result.ok ? 'ok' : result.reason);

// Made by libwebp 1.2.4 (cwebp -q 70, img2webp -lossless), so that the lossy and extended layouts
// are checked on files a real encoder wrote: a 33×17 lossy (VP8) image, a 20×12 lossy one with
// alpha (VP8X, ALPH, VP8), and a two-frame 8×6 animation (VP8X, ANIM, ANMF).
const LIBWEBP = {
  lossy: Buffer.from(
    'UklGRqwAAABXRUJQVlA4IKAAAACwBQCdASohABEAPo06l0glI6IhNUgAoBGJZADBCoB+Ev4qzADBAP1g97oCgsOToZYgz14fmdgA' +
      '/ui0zwHHUu7/++54A9Vbz1m/vKS3nrN//uyeqhiiqnWAYqYCaCpUe7TR+afbO/mCMCVXkRXChJWBVO8f5ZHJ/T/8LaBOQTl/1jf8' +
      'Tv0N4gERWNq4gz/1EPp8TTbOF7gQgq9mKISGQAAA',
    'base64',
  ),
  alpha: Buffer.from(
    'UklGRnIAAABXRUJQVlA4WAoAAAAQAAAAEwAACwAAQUxQSBQAAAABD/DA/4iIIBZM/vwphhpBRP+DBlZQOCA4AAAAEAMAnQEqFAAM' +
      'AD6dPplIJaMioTAIALATiUAVhdAAASQAAOyPwrFP9zUVsW9D/4ILaj0w6F55NgA=',
    'base64',
  ),
  animated: Buffer.from(
    'UklGRowAAABXRUJQVlA4WAoAAAACAAAABwAABQAAQU5JTQYAAAD/////AABBTk1GLAAAAAAAAAAAAAcAAAUAAGQAAAJWUDhMFAAA' +
      'AC8HQAEABxD9j/4HAILwv20iov8hQU5NRiwAAAAAAAAAAAAHAAAFAABkAAAAVlA4TBQAAAAvB0ABAAcQ0f/+BwCC8L9tIqL/IQ==',
    'base64',
  ),
};

/** The three formats, as Velro's test images make them, by content type. */
const MAKERS = {
  'image/png': pngImage,
  'image/jpeg': jpegImage,
  'image/webp': webpImage,
} as const;
const TYPES = Object.keys(MAKERS) as (keyof typeof MAKERS)[];

/** A minimal PNG with the given chunks after IHDR (CRCs are not checked, so zeros do). */
function pngWith(width: number, height: number, chunks: string[], depth = 8, colourType = 6): Buffer {
  const chunk = (type: string, data = Buffer.alloc(0)) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'latin1');
    data.copy(out, 8);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = depth;
  ihdr[9] = colourType;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...chunks.map((type) => chunk(type, type === 'IDAT' ? Buffer.from([1, 2, 3]) : undefined)),
  ]);
}

/** A VP8X header chunk's payload: flags, then the canvas size. */
function vp8x(width: number, height: number, flags = 0): Buffer {
  const data = Buffer.alloc(10);
  data[0] = flags;
  data.writeUIntLE(width - 1, 4, 3);
  data.writeUIntLE(height - 1, 7, 3);
  return data;
}

describe('checkImage', () => {
  it('accepts PNG, JPEG and WebP files, with the size in their header', () => {
    for (const type of TYPES) {
      for (const [w, h] of [
        [1, 1],
        [2, 3],
        [33, 17],
        [640, 480],
        [17, 1000],
      ] as const) {
        const bytes = MAKERS[type](w, h, quadrants(w, h));
        expect(check(bytes), `${type} ${w}x${h}`).toEqual({
          ok: true,
          contentType: type,
          width: w,
          height: h,
        });
      }
    }
  });

  it('accepts the lossy and extended WebP layouts libwebp writes', () => {
    expect(check(LIBWEBP.lossy)).toEqual({ ok: true, contentType: 'image/webp', width: 33, height: 17 });
    expect(check(LIBWEBP.alpha)).toEqual({ ok: true, contentType: 'image/webp', width: 20, height: 12 });
    // A VP8X file around one of ours: the canvas size is read from VP8X.
    const extended = webpFile([
      ['VP8X', vp8x(9, 4)],
      ['VP8L', vp8l(9, 4, RED)],
    ]);
    expect(check(extended)).toEqual({ ok: true, contentType: 'image/webp', width: 9, height: 4 });
  });

  it('walks the tables and further scans of a multi-scan JPEG to its end', () => {
    const baseline = jpegImage(16, 16, quadrants(16, 16));
    const eoi = baseline.length - 2;
    // After the first scan: a table (DHT), a second scan header, entropy data with a stuffed 0xFF and
    // a restart marker, then EOI. Structurally a progressive file; the check reads no pixels.
    const dht = Buffer.from([0xff, 0xc4, 0x00, 0x05, 0x10, 0x00, 0x01]);
    const sos = Buffer.from([0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00]);
    const data = Buffer.from([0x12, 0xff, 0x00, 0x34, 0xff, 0xd3, 0x56, 0xff, 0xff, 0xd9]);
    const multi = Buffer.concat([baseline.subarray(0, eoi), dht, sos, data]);
    expect(check(multi)).toEqual({ ok: true, contentType: 'image/jpeg', width: 16, height: 16 });
    // Cut before that second EOI, it is truncated: the first scan's end is not the file's.
    expect(reasonOf(check(multi.subarray(0, multi.length - 2)))).toBe('truncated');
  });

  it('reads the frame header after a large EXIF block', () => {
    const plain = jpegImage(40, 30);
    const exif = Buffer.alloc(60_000, 0x20);
    const app1 = Buffer.concat([
      Buffer.from([0xff, 0xe1, (exif.length + 2) >> 8, (exif.length + 2) & 0xff]),
      exif,
    ]);
    const withExif = Buffer.concat([plain.subarray(0, 2), app1, plain.subarray(2)]);
    expect(check(withExif)).toEqual({ ok: true, contentType: 'image/jpeg', width: 40, height: 30 });
  });

  it('ignores bytes after a PNG IEND or a JPEG EOI (a motion photo), but not after a WebP RIFF', () => {
    const tail = Buffer.from('ftypmp42 and then a video');
    expect(check(Buffer.concat([pngImage(5, 5), tail])).ok).toBe(true);
    expect(check(Buffer.concat([jpegImage(5, 5), tail])).ok).toBe(true);
    const webp = check(Buffer.concat([webpImage(5, 5), tail]));
    expect(webp).toMatchObject({ ok: false, reason: 'not_an_image' });
    expect(webp.ok || webp.message).toMatch(/follow the end of its RIFF data/);
  });

  describe('declared types', () => {
    it('takes a matching claim, whatever its case and parameters, and generic or no claims', () => {
      for (const type of TYPES) {
        const bytes = MAKERS[type](4, 4);
        for (const claim of [
          type,
          type.toUpperCase(),
          `${type}; name="x"`,
          ' application/octet-stream',
          '',
        ]) {
          expect(check(bytes, claim).ok, `${type} claimed as ${claim}`).toBe(true);
        }
        expect(check(bytes, undefined).ok).toBe(true);
      }
      expect(check(jpegImage(4, 4), 'image/jpg').ok).toBe(true);
    });

    it('refuses a claim that names another type than the content: type_mismatch, naming both', () => {
      for (const actual of TYPES) {
        const bytes = MAKERS[actual](4, 4);
        for (const claim of [...TYPES.filter((t) => t !== actual), 'image/gif', 'text/html']) {
          const result = check(bytes, claim);
          expect(result, `${actual} claimed as ${claim}`).toMatchObject({
            ok: false,
            reason: 'type_mismatch',
          });
          expect(result.ok || result.message).toContain(claim);
          expect(result.ok || result.message).toContain(actual);
        }
      }
    });

    it('judges the content first: a non-image is not_an_image whatever it claims', () => {
      expect(reasonOf(check(Buffer.from('hello'), 'image/png'))).toBe('not_an_image');
    });
  });

  it('refuses what is not an image: not_an_image', () => {
    for (const [what, bytes] of [
      ['empty', Buffer.alloc(0)],
      ['text', Buffer.from('just some text, certainly not a picture')],
      ['HTML', Buffer.from('<!doctype html><html><body><img src=x onerror=alert(1)></body></html>')],
      ['JSON', Buffer.from('{"image":"cat.png"}')],
      ['zeros', Buffer.alloc(4096)],
      ['an MP4', Buffer.from('\0\0\0\x18ftypisom\0\0\x02\0isomiso2', 'latin1')],
      ['a PNG signature cut in 3', pngImage(2, 2).subarray(0, 3)],
      ['two JPEG bytes', Buffer.from([0xff, 0xd8])],
      ['a RIFF that is not WebP', Buffer.from('RIFF\x04\0\0\0WAVEfmt ', 'latin1')],
    ] as const) {
      expect(reasonOf(check(bytes)), what).toBe('not_an_image');
    }
  });

  it('refuses a file whose magic bytes are right but whose structure is not: not_an_image, saying why', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['PNG without IHDR first', pngWith(4, 4, ['IEND']).fill(0x41, 12, 16), /first chunk is not a header/],
      ['PNG 0 wide', pngWith(0, 4, ['IDAT', 'IEND']), /size 0×4/],
      ['PNG colour type 7', pngWith(4, 4, ['IDAT', 'IEND'], 8, 7), /colour type 7/],
      ['PNG 16-bit palette', pngWith(4, 4, ['IDAT', 'IEND'], 16, 3), /bit depth 16/],
      ['PNG without IDAT', pngWith(4, 4, ['IEND']), /no image data/],
      ['PNG chunk type of digits', pngWith(4, 4, ['1234', 'IEND']), /broken chunk/],
      ['JPEG scan before frame', Buffer.from([0xff, 0xd8, 0xff, 0xda, 0, 2, 0xff, 0xd9]), /before any frame/],
      ['JPEG ending before data', Buffer.from([0xff, 0xd8, 0xff, 0xd9]), /no image data/],
      ['JPEG garbage after SOI', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0x12, 0x34]), /no marker/],
      ['WebP with a WAVE chunk first', webpFile([['fmt ', Buffer.alloc(16)]]), /not VP8, VP8L or VP8X/],
      ['WebP VP8L version 1', webpFile([['VP8L', Buffer.from([0x2f, 0, 0, 0, 0x20])]]), /version 1/],
      ['WebP VP8 without start code', webpFile([['VP8 ', Buffer.alloc(10)]]), /start code/],
      ['WebP VP8X without image', webpFile([['VP8X', vp8x(4, 4)]]), /no image data/],
    ];
    for (const [what, bytes, message] of cases) {
      const result = check(bytes);
      expect(result, what).toMatchObject({ ok: false, reason: 'not_an_image' });
      expect(result.ok || result.message, what).toMatch(message);
    }
  });

  it('refuses other image formats: unsupported_type, naming the format', () => {
    const bmp = Buffer.alloc(64);
    bmp.write('BM', 0, 'latin1');
    bmp.writeUInt32LE(64, 2);
    bmp.writeUInt32LE(40, 14);
    for (const [format, bytes] of [
      ['GIF', Buffer.from('GIF89a\x01\0\x01\0\x80\0\0', 'latin1')],
      ['GIF', Buffer.from('GIF87a\x01\0\x01\0', 'latin1')],
      ['BMP', bmp],
      ['TIFF', Buffer.from('II*\0\x08\0\0\0', 'latin1')],
      ['TIFF', Buffer.from('MM\0*\0\0\0\x08', 'latin1')],
      ['HEIC', Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic', 'latin1')],
      ['AVIF', Buffer.from('\0\0\0\x1cftypavif\0\0\0\0avifmif1', 'latin1')],
      ['JPEG XL', Buffer.from([0xff, 0x0a, 0xfa, 0x7f])],
      ['SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')],
      ['SVG', Buffer.from('\ufeff<?xml version="1.0"?>\n<!-- drawn -->\n<svg width="10"></svg>')],
      ['Animated WebP', LIBWEBP.animated],
    ] as const) {
      const result = check(bytes);
      expect(result, format).toMatchObject({ ok: false, reason: 'unsupported_type' });
      expect(result.ok || result.message, format).toContain(format);
    }
  });

  it('refuses every truncation of each format: truncated', () => {
    // The smallest prefix that still has the format's magic bytes, up to one byte short of whole.
    const magic = { 'image/png': 8, 'image/jpeg': 3, 'image/webp': 12 };
    for (const type of TYPES) {
      const whole = MAKERS[type](16, 12, quadrants(16, 12, [RED, GREEN, BLUE, WHITE]));
      for (let length = magic[type]; length < whole.length; length++) {
        const result = check(whole.subarray(0, length));
        expect(reasonOf(result), `${type} cut to ${length} of ${whole.length} bytes`).toBe('truncated');
      }
    }
    for (const [name, file] of Object.entries(LIBWEBP).filter(([name]) => name !== 'animated')) {
      for (let length = 12; length < file.length; length++) {
        expect(reasonOf(check(file.subarray(0, length))), `${name} cut to ${length}`).toBe('truncated');
      }
    }
  });

  it('says where a file was cut', () => {
    const messageOf = (result: ImageCheck) => (result.ok ? '' : result.message);
    const png = pngImage(8, 8);
    expect(messageOf(check(png.subarray(0, png.length - 12)))).toMatch(/PNG image is truncated.*IEND/);
    const jpeg = jpegImage(8, 8);
    expect(messageOf(check(jpeg.subarray(0, jpeg.length - 2)))).toMatch(
      /JPEG image is truncated.*end-of-image/,
    );
    const webp = webpImage(8, 8);
    expect(messageOf(check(webp.subarray(0, webp.length - 2)))).toMatch(
      new RegExp(`WebP image is truncated.*${webp.length - 2} of the ${webp.length} bytes`),
    );
  });

  it('refuses an image over the pixel cap: too_many_pixels, with its size; the cap itself is allowed', () => {
    for (const type of TYPES) {
      const bytes = MAKERS[type](300, 200);
      expect(check(bytes, undefined, 60_000).ok, type).toBe(true);
      const result = check(bytes, undefined, 59_999);
      expect(result, type).toMatchObject({ ok: false, reason: 'too_many_pixels' });
      expect(result.ok || result.message).toContain('300×200 (60,000 pixels)');
      expect(result.ok || result.message).toContain('59,999');
    }
    expect(reasonOf(check(LIBWEBP.lossy, undefined, 33 * 17 - 1))).toBe('too_many_pixels');
    expect(reasonOf(check(LIBWEBP.alpha, undefined, 20 * 12 - 1))).toBe('too_many_pixels');
  });

  it('refuses a decompression bomb from its header alone, before reading the rest', () => {
    // 100,000 × 100,000 claimed by a file of a few dozen bytes, cut short too: the size decides.
    expect(reasonOf(check(pngWith(100_000, 100_000, ['IDAT'])))).toBe('too_many_pixels');
    const jpeg = jpegImage(8, 8);
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    jpeg.writeUInt16BE(60_000, sof + 5);
    jpeg.writeUInt16BE(60_000, sof + 7);
    expect(reasonOf(check(jpeg.subarray(0, jpeg.length - 10)))).toBe('too_many_pixels');
    const bomb = webpFile([
      ['VP8X', vp8x(16_000_000, 16_000_000)],
      ['VP8L', vp8l(1, 1, RED)],
    ]);
    expect(reasonOf(check(bomb.subarray(0, 40)))).toBe('too_many_pixels');
  });

  it('never throws: any bytes, and valid files with bytes changed or cut, get a verdict', () => {
    const seeds = [
      pngImage(6, 5, quadrants(6, 5)),
      jpegImage(6, 5, quadrants(6, 5)),
      webpImage(6, 5, quadrants(6, 5)),
      LIBWEBP.lossy,
      LIBWEBP.alpha,
      LIBWEBP.animated,
    ];
    const mutated = fc
      .tuple(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.option(fc.nat()),
      )
      .map(([seed, changes, cut]) => {
        const bytes = Buffer.from(seed);
        for (const [at, value] of changes) bytes[at % bytes.length] = value;
        return cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
      });
    const random = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(fc.oneof(mutated, random), fc.option(fc.constantFrom(...TYPES)), (bytes, claim) => {
        const result = check(bytes, claim ?? undefined);
        if (result.ok) {
          expect(result.width).toBeGreaterThan(0);
          expect(result.height).toBeGreaterThan(0);
        } else {
          expect(result.message.length).toBeGreaterThan(10);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
