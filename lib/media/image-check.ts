// Input images (uploads, images copied from a client's URL): what a file is by its content, its
// pixel size from its header, and that it is whole, before Velro keeps it or hands it to a provider.
// Nothing is decoded: the check reads the container (PNG chunks, JPEG segments, RIFF chunks) only.

export type InputImageType = 'image/png' | 'image/jpeg' | 'image/webp';

export type ImageCheck =
  | { ok: true; contentType: InputImageType; width: number; height: number }
  | {
      ok: false;
      reason: 'not_an_image' | 'unsupported_type' | 'type_mismatch' | 'truncated' | 'too_many_pixels';
      message: string;
    };

type Refusal = Extract<ImageCheck, { ok: false }>;
type Size = { width: number; height: number };

const refuse = (reason: Refusal['reason'], message: string): Refusal => ({ ok: false, reason, message });

const NAME: Record<InputImageType, string> = {
  'image/png': 'PNG',
  'image/jpeg': 'JPEG',
  'image/webp': 'WebP',
};

/** A container that does not hold together: not a PNG/JPEG/WebP whatever its first bytes say. */
const malformed = (type: InputImageType, why: string) =>
  refuse('not_an_image', `This is not a valid ${NAME[type]} image: ${why}.`);
const cutShort = (type: InputImageType, where: string) =>
  refuse('truncated', `The ${NAME[type]} image is truncated: it ends ${where}.`);

/**
 * By content: magic bytes, then the dimensions in the header, then the structure to its end.
 *
 * `declaredType` is what the sender claimed (a content-type, parameters and case ignored); a claim
 * that names another type than the content is `type_mismatch`. No claim, or a generic binary one
 * (`application/octet-stream`), claims nothing. Bytes after a PNG's IEND or a JPEG's EOI are
 * ignored, as decoders do (phones append a video to a JPEG "motion photo"); a WebP must be exactly
 * as long as its RIFF header says.
 */
export function checkImage(bytes: Buffer, opts: { maxPixels: number; declaredType?: string }): ImageCheck {
  const type = sniff(bytes);
  if (!type) return foreign(bytes);
  const claimed = claimedType(opts.declaredType);
  if (claimed !== undefined && claimed !== type) {
    return refuse(
      'type_mismatch',
      `Declared as ${claimed}, but the content is a ${NAME[type]} image (${type}).`,
    );
  }
  const reading = READERS[type](bytes);
  if ('ok' in reading) return reading;
  const { width, height } = reading;
  if (width * height > opts.maxPixels) {
    return refuse(
      'too_many_pixels',
      `The image is ${width}×${height} (${(width * height).toLocaleString('en')} pixels); ` +
        `at most ${opts.maxPixels.toLocaleString('en')} pixels are accepted.`,
    );
  }
  const broken = reading.rest();
  if (broken) return broken;
  return { ok: true, contentType: type, width, height };
}

/** A format's reading of a file: the size in its header, and a check of the rest of it to its end. */
type Reading = Size & { rest(): Refusal | undefined };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function sniff(b: Buffer): InputImageType | undefined {
  if (b.length >= 8 && b.subarray(0, 8).equals(PNG_SIGNATURE)) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP')
    return 'image/webp';
  return undefined;
}

const GENERIC_TYPES = new Set(['', 'application/octet-stream', 'binary/octet-stream']);
const ALIASES: Record<string, string> = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg' };

function claimedType(declared: string | undefined): string | undefined {
  if (declared === undefined) return undefined;
  const essence = declared.split(';')[0]!.trim().toLowerCase();
  if (GENERIC_TYPES.has(essence)) return undefined;
  return ALIASES[essence] ?? essence;
}

/** Not one of ours: an image format Velro does not take, or not an image at all. */
function foreign(b: Buffer): Refusal {
  const other = otherImageFormat(b);
  if (other) return refuse('unsupported_type', `${other} images are not accepted: send PNG, JPEG or WebP.`);
  if (b.length === 0) return refuse('not_an_image', 'The file is empty: send a PNG, JPEG or WebP image.');
  return refuse('not_an_image', 'The content is not a PNG, JPEG or WebP image.');
}

const HEIF_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1']);

function otherImageFormat(b: Buffer): string | undefined {
  const text = (start: number, end: number) => (b.length >= end ? b.toString('latin1', start, end) : '');
  if (/^GIF8[79]a$/.test(text(0, 6))) return 'GIF';
  if (text(0, 2) === 'BM' && b.length >= 18 && [12, 40, 52, 56, 108, 124].includes(b.readUInt32LE(14)))
    return 'BMP';
  if (text(0, 4) === 'II*\0' || text(0, 4) === 'MM\0*') return 'TIFF';
  if (text(4, 8) === 'ftyp') {
    const brand = text(8, 12);
    if (brand === 'avif' || brand === 'avis') return 'AVIF';
    if (HEIF_BRANDS.has(brand)) return 'HEIC/HEIF';
  }
  if ((b[0] === 0xff && b[1] === 0x0a) || text(4, 8) === 'JXL ') return 'JPEG XL';
  if (
    /^(\xef\xbb\xbf)?\s*(<\?xml[^>]*>\s*)?(<!--[\s\S]*?-->\s*)*<svg[\s>]/i.test(
      text(0, Math.min(b.length, 4096)),
    )
  )
    return 'SVG';
  return undefined;
}

// PNG (ISO/IEC 15948): the signature, IHDR first, then chunks up to IEND, one IDAT at least.

/** Bit depths each colour type allows. */
const PNG_DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
const MAX_PNG_DIMENSION = 0x7fffffff;

function readPng(b: Buffer): Reading | Refusal {
  if (b.length < 8 + 8 + 13) return cutShort('image/png', 'inside its header (IHDR)');
  if (b.readUInt32BE(8) !== 13 || b.toString('latin1', 12, 16) !== 'IHDR')
    return malformed('image/png', 'its first chunk is not a header (IHDR)');
  const width = b.readUInt32BE(16);
  const height = b.readUInt32BE(20);
  if (width === 0 || height === 0 || width > MAX_PNG_DIMENSION || height > MAX_PNG_DIMENSION)
    return malformed('image/png', `its header gives the size ${width}×${height}`);
  const depth = b[24]!;
  const colourType = b[25]!;
  if (!PNG_DEPTHS[colourType]?.includes(depth))
    return malformed('image/png', `colour type ${colourType} with bit depth ${depth}`);
  return { width, height, rest: () => pngChunks(b) };
}

function pngChunks(b: Buffer): Refusal | undefined {
  let sawData = false;
  for (let pos = 8; ;) {
    if (pos + 8 > b.length) return cutShort('image/png', 'before its last chunk (IEND)');
    const length = b.readUInt32BE(pos);
    const type = b.toString('latin1', pos + 4, pos + 8);
    if (length > MAX_PNG_DIMENSION || !/^[A-Za-z]{4}$/.test(type))
      return malformed('image/png', `a broken chunk at byte ${pos}`);
    if (pos + 12 + length > b.length) return cutShort('image/png', `inside its ${type} chunk`);
    if (type === 'IDAT') sawData = true;
    if (type === 'IEND') return sawData ? undefined : malformed('image/png', 'it has no image data (IDAT)');
    pos += 12 + length;
  }
}

// JPEG (ITU T.81): SOI, marker segments with a frame header (SOFn) before the first scan (SOS),
// entropy-coded scans, EOI.

/** SOF0..SOF15, minus DHT (C4), JPG (C8) and DAC (CC). */
const isStartOfFrame = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
/** Markers without a length: TEM and the restart markers. */
const isStandalone = (m: number) => m === 0x01 || (m >= 0xd0 && m <= 0xd7);

function readJpeg(b: Buffer): Reading | Refusal {
  let frame: Size | undefined;
  for (let pos = 2; ;) {
    if (pos >= b.length) return cutShort('image/jpeg', 'before its image data');
    if (b[pos] !== 0xff) return malformed('image/jpeg', `no marker at byte ${pos}`);
    while (b[pos + 1] === 0xff) pos++; // fill bytes
    if (pos + 2 > b.length) return cutShort('image/jpeg', 'before its image data');
    const marker = b[pos + 1]!;
    if (isStandalone(marker)) {
      pos += 2;
      continue;
    }
    if (marker === 0xd8 || marker === 0xd9)
      return malformed('image/jpeg', 'it has no image data before its end');
    if (pos + 4 > b.length) return cutShort('image/jpeg', 'inside its header');
    const length = b.readUInt16BE(pos + 2);
    if (length < 2) return malformed('image/jpeg', `a segment of length ${length} at byte ${pos}`);
    if (pos + 2 + length > b.length) return cutShort('image/jpeg', 'inside its header');
    if (isStartOfFrame(marker)) {
      if (length < 8) return malformed('image/jpeg', 'its frame header is too short');
      frame = { height: b.readUInt16BE(pos + 5), width: b.readUInt16BE(pos + 7) };
      if (frame.width === 0 || frame.height === 0)
        return malformed('image/jpeg', `its frame header gives the size ${frame.width}×${frame.height}`);
    }
    if (marker === 0xda) {
      if (!frame) return malformed('image/jpeg', 'its image data comes before any frame header');
      const scan = pos + 2 + length;
      return { ...frame, rest: () => jpegScans(b, scan) };
    }
    pos += 2 + length;
  }
}

/**
 * From the first scan's data to EOI. Entropy-coded data holds 0xFF only stuffed (FF 00) or as a
 * restart marker; any other marker ends it: more tables and scans (progressive), or EOI.
 */
function jpegScans(b: Buffer, scan: number): Refusal | undefined {
  for (let pos = scan; ;) {
    const ff = b.indexOf(0xff, pos);
    if (ff === -1 || ff + 1 >= b.length) return cutShort('image/jpeg', 'before its end-of-image marker');
    const next = b[ff + 1]!;
    if (next === 0xd9) return undefined;
    if (next === 0x00 || isStandalone(next)) {
      pos = ff + 2;
      continue;
    }
    if (next === 0xff) {
      pos = ff + 1;
      continue;
    }
    if (next === 0xd8) return malformed('image/jpeg', `a second start of image at byte ${ff}`);
    if (ff + 4 > b.length) return cutShort('image/jpeg', 'before its end-of-image marker');
    const length = b.readUInt16BE(ff + 2);
    if (length < 2) return malformed('image/jpeg', `a segment of length ${length} at byte ${ff}`);
    if (ff + 2 + length > b.length) return cutShort('image/jpeg', 'before its end-of-image marker');
    pos = ff + 2 + length;
  }
}

// WebP (RFC 9649): a RIFF file of chunks, its first one the image (VP8, VP8L) or the extended
// header (VP8X) followed by the image's chunks.

function readWebp(b: Buffer): Reading | Refusal {
  if (b.length < 20) return cutShort('image/webp', 'inside its header');
  const fourcc = b.toString('latin1', 12, 16);
  const size = b.readUInt32LE(16);
  const data = 20;
  /** Refused unless the first chunk has `n` bytes, all of them in the file. */
  const lacks = (n: number) =>
    size < n
      ? malformed('image/webp', `its ${fourcc.trim()} chunk is too short`)
      : data + n > b.length
        ? cutShort('image/webp', `inside its ${fourcc.trim()} header`)
        : undefined;
  const rest = (extended: boolean) => () => webpChunks(b, extended);
  if (fourcc === 'VP8 ') {
    const short = lacks(10);
    if (short) return short;
    if ((b[data]! & 1) !== 0) return malformed('image/webp', 'its VP8 frame is not a key frame');
    if (b[data + 3] !== 0x9d || b[data + 4] !== 0x01 || b[data + 5] !== 0x2a)
      return malformed('image/webp', 'its VP8 start code is missing');
    // 14 bits each; the top two are an upscaling hint.
    const width = b.readUInt16LE(data + 6) & 0x3fff;
    const height = b.readUInt16LE(data + 8) & 0x3fff;
    if (width === 0 || height === 0) return malformed('image/webp', `its VP8 size is ${width}×${height}`);
    return { width, height, rest: rest(false) };
  }
  if (fourcc === 'VP8L') {
    const short = lacks(5);
    if (short) return short;
    if (b[data] !== 0x2f) return malformed('image/webp', 'its VP8L signature is missing');
    const bits = b.readUInt32LE(data + 1);
    if (bits >>> 29 !== 0) return malformed('image/webp', `VP8L version ${bits >>> 29}`);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, rest: rest(false) };
  }
  if (fourcc === 'VP8X') {
    const short = lacks(10);
    if (short) return short;
    if ((b[data]! & 0x02) !== 0)
      return refuse('unsupported_type', 'Animated WebP images are not accepted: send a still image.');
    return { width: b.readUIntLE(data + 4, 3) + 1, height: b.readUIntLE(data + 7, 3) + 1, rest: rest(true) };
  }
  return malformed('image/webp', `its first chunk is ${JSON.stringify(fourcc)}, not VP8, VP8L or VP8X`);
}

/** The RIFF length against the file's, and every chunk within it (after VP8X, an image among them). */
function webpChunks(b: Buffer, extended: boolean): Refusal | undefined {
  const end = 8 + b.readUInt32LE(4);
  if (end > b.length)
    return cutShort('image/webp', `after ${b.length} of the ${end} bytes its RIFF header declares`);
  if (end < b.length)
    return malformed('image/webp', `${b.length - end} bytes follow the end of its RIFF data`);
  let sawImage = false;
  for (let pos = 12; pos < end;) {
    if (pos + 8 > end) return malformed('image/webp', `a broken chunk at byte ${pos}`);
    const fourcc = b.toString('latin1', pos, pos + 4);
    const size = b.readUInt32LE(pos + 4);
    if (pos + 8 + size > end)
      return malformed('image/webp', `its ${fourcc.trim()} chunk runs past the end of its RIFF data`);
    if (fourcc === 'VP8 ' || fourcc === 'VP8L') sawImage = true;
    pos += 8 + size + (size & 1);
  }
  if (extended && !sawImage) return malformed('image/webp', 'it has no image data (VP8 or VP8L)');
  return undefined;
}

const READERS: Record<InputImageType, (bytes: Buffer) => Reading | Refusal> = {
  'image/png': readPng,
  'image/jpeg': readJpeg,
  'image/webp': readWebp,
};
