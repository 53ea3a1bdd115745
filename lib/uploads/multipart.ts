// multipart/form-data (RFC 7578) as POST /v1/uploads takes it: one file, in the field `file`, read
// from a body already held whole (the route's body limit bounds it). Strict: anything but that one
// part, or a body that does not hold together, is refused with the reason.

/** The body is not the multipart form expected; `message` says why. */
export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

/** The file part is larger than allowed. */
export class MultipartFileTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`The file is larger than ${maxBytes} bytes.`);
    this.name = 'MultipartFileTooLarge';
  }
}

export interface FilePart {
  /** The file name the sender gave, if any (never a path to trust). */
  fileName: string | null;
  /** The part's own content-type, if it has one. */
  contentType: string | null;
  bytes: Buffer;
}

const CRLF = '\r\n';
/** Headers of one part: far more than a browser or curl sends. */
const MAX_PART_HEADER_BYTES = 8 * 1024;
// RFC 2046 §5.1.1: 1 to 70 of these, not ending in a space.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** The boundary of a `multipart/form-data` content-type. */
export function boundaryOf(contentType: string): string {
  const match = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (boundary === undefined) throw new MultipartError('The multipart content-type has no boundary.');
  if (!BOUNDARY.test(boundary)) throw new MultipartError('The multipart boundary is not valid (RFC 2046).');
  return boundary;
}

/** The one file part of a form, in the field `field`. */
export function parseFilePart(
  body: Buffer,
  contentType: string,
  opts: { maxFileBytes: number; field?: string },
): FilePart {
  const field = opts.field ?? 'file';
  const delimiter = `--${boundaryOf(contentType)}`;
  const next = Buffer.from(CRLF + delimiter, 'latin1');

  // A preamble before the first boundary is allowed (and ignored), as RFC 2046 says.
  let pos = body.subarray(0, delimiter.length).toString('latin1') === delimiter ? 0 : body.indexOf(next);
  if (pos === -1) throw new MultipartError('The body has no multipart boundary: it is not the form it says.');
  if (pos > 0) pos += CRLF.length;
  pos += delimiter.length;

  let file: FilePart | undefined;
  for (;;) {
    if (body.toString('latin1', pos, pos + 2) === '--') break; // the closing boundary
    pos = afterLineEnd(body, pos);
    if (body.toString('latin1', pos, pos + 2) === CRLF)
      throw new MultipartError('A part has no Content-Disposition header.');
    const headerEnd = body.indexOf(CRLF + CRLF, pos, 'latin1');
    if (headerEnd === -1 || headerEnd - pos > MAX_PART_HEADER_BYTES) {
      throw new MultipartError(
        headerEnd === -1 ? 'The form ends inside the headers of a part.' : 'A part has too many headers.',
      );
    }
    const headers = partHeaders(body.toString('utf8', pos, headerEnd));
    const start = headerEnd + 4;
    const end = body.indexOf(next, start);
    if (end === -1) throw new MultipartError('The form ends before its closing boundary: it was cut short.');

    const { name, fileName } = disposition(headers.get('content-disposition'));
    if (name !== field) {
      throw new MultipartError(
        `Unexpected form field ${JSON.stringify(name)}: send only the image, in the field "${field}".`,
      );
    }
    if (file) throw new MultipartError(`The form has more than one "${field}": send one image.`);
    const encoding = headers.get('content-transfer-encoding')?.toLowerCase();
    if (encoding !== undefined && !['binary', '8bit', '7bit'].includes(encoding)) {
      throw new MultipartError(
        `Content-Transfer-Encoding ${encoding} is not supported: send the bytes as they are.`,
      );
    }
    if (end - start > opts.maxFileBytes) throw new MultipartFileTooLarge(opts.maxFileBytes);
    file = { fileName, contentType: headers.get('content-type') ?? null, bytes: body.subarray(start, end) };
    pos = end + next.length;
  }
  if (!file) throw new MultipartError(`The form has no "${field}" field: send the image in it.`);
  return file;
}

/** Past the CRLF that ends a boundary line (after optional transport padding: spaces and tabs). */
function afterLineEnd(body: Buffer, pos: number): number {
  while (body[pos] === 0x20 || body[pos] === 0x09) pos++;
  if (body.toString('latin1', pos, pos + 2) !== CRLF) {
    throw new MultipartError(
      pos >= body.length
        ? 'The form ends before its closing boundary: it was cut short.'
        : 'A boundary line is malformed.',
    );
  }
  return pos + 2;
}

function partHeaders(block: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of block.split(CRLF)) {
    const colon = line.indexOf(':');
    if (colon <= 0 || /^\s/.test(line))
      throw new MultipartError(`A part has a malformed header: ${JSON.stringify(line.slice(0, 80))}.`);
    const name = line.slice(0, colon).trim().toLowerCase();
    if (headers.has(name)) throw new MultipartError(`A part has two ${name} headers.`);
    headers.set(name, line.slice(colon + 1).trim());
  }
  return headers;
}

/** `form-data; name="file"; filename="cat.png"` (or `filename*=UTF-8''…`, RFC 5987). */
function disposition(header: string | undefined): { name: string; fileName: string | null } {
  if (header === undefined) throw new MultipartError('A part has no Content-Disposition header.');
  const [kind, ...rest] = splitParameters(header);
  if (kind?.toLowerCase() !== 'form-data') throw new MultipartError('A part is not form-data.');
  const params = new Map<string, string>();
  for (const param of rest) {
    const eq = param.indexOf('=');
    if (eq <= 0) throw new MultipartError(`A part's Content-Disposition is malformed.`);
    params.set(param.slice(0, eq).trim().toLowerCase(), unquote(param.slice(eq + 1).trim()));
  }
  const name = params.get('name');
  if (name === undefined) throw new MultipartError('A part has no field name.');
  const extended = params.get('filename*');
  const fileName = extended !== undefined ? decodeExtended(extended) : (params.get('filename') ?? null);
  return { name, fileName };
}

/** `a; b="x;y"; c=d` → ['a', 'b="x;y"', 'c=d']: semicolons inside quotes stay. */
function splitParameters(value: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted && c === '\\' && i + 1 < value.length) {
      current += c + value[++i];
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      parts.push(current.trim());
      current = '';
      continue;
    }
    current += c;
  }
  if (quoted) throw new MultipartError("A part's Content-Disposition has an unclosed quote.");
  parts.push(current.trim());
  return parts.filter((p) => p.length > 0);
}

function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  return value.slice(1, -1).replace(/\\(.)/g, '$1');
}

function decodeExtended(value: string): string {
  const match = /^utf-8'[^']*'(.*)$/i.exec(value);
  if (!match) throw new MultipartError("A part's filename* is not UTF-8 (RFC 5987).");
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    throw new MultipartError("A part's filename* is not valid percent-encoding.");
  }
}
