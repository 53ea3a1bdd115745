import { describe, expect, it } from 'vitest';
import {
  boundaryOf,
  MultipartError,
  MultipartFileTooLarge,
  parseFilePart,
} from '../../lib/uploads/multipart';

const CT = 'multipart/form-data; boundary=b0undary';
const file = Buffer.from([0x89, 0x50, 0x0d, 0x0a, 0x2d, 0x2d, 0x00, 0xff]); // CRLF and "--" inside
const form = (...lines: (string | Buffer)[]) =>
  Buffer.concat(lines.map((l) => (typeof l === 'string' ? Buffer.from(l, 'utf8') : l)));

describe('parseFilePart', () => {
  it('reads the file, its name and type, with a preamble, transport padding and an epilogue', () => {
    const body = form(
      'a preamble, ignored\r\n',
      '--b0undary  \r\n',
      'Content-Disposition: form-data; name="file"; filename="a \\"cat\\"; 1.png"\r\n',
      'Content-Type: image/png\r\n\r\n',
      file,
      '\r\n--b0undary--\r\nan epilogue, ignored',
    );
    expect(parseFilePart(body, CT, { maxFileBytes: 100 })).toEqual({
      fileName: 'a "cat"; 1.png',
      contentType: 'image/png',
      bytes: file,
    });
  });

  it('takes a quoted boundary, filename* (RFC 5987), no filename and no type', () => {
    const body = form(
      '--x y\r\n',
      "content-disposition: form-data; name=file; filename*=UTF-8''k%C3%A4tzchen.png\r\n\r\n",
      file,
      '\r\n--x y--',
    );
    expect(parseFilePart(body, 'multipart/form-data; boundary="x y"', { maxFileBytes: 100 })).toEqual({
      fileName: 'kätzchen.png',
      contentType: null,
      bytes: file,
    });
    const plain = form(
      '--b0undary\r\ncontent-disposition: form-data; name="file"\r\n\r\n',
      file,
      '\r\n--b0undary--',
    );
    expect(parseFilePart(plain, CT, { maxFileBytes: 100 }).fileName).toBeNull();
  });

  it('refuses a file over the cap, and takes one of exactly the cap', () => {
    const body = form(
      '--b0undary\r\ncontent-disposition: form-data; name="file"\r\n\r\n',
      file,
      '\r\n--b0undary--',
    );
    expect(parseFilePart(body, CT, { maxFileBytes: file.length }).bytes).toEqual(file);
    expect(() => parseFilePart(body, CT, { maxFileBytes: file.length - 1 })).toThrow(MultipartFileTooLarge);
  });

  it('refuses what is not exactly one file part, saying why', () => {
    const part = (name: string, extra = '') =>
      `--b0undary\r\ncontent-disposition: form-data; name="${name}"${extra}\r\n\r\nxx\r\n`;
    const cases: [Buffer, RegExp][] = [
      [form(part('image'), '--b0undary--'), /Unexpected form field "image"/],
      [form(part('file'), part('file'), '--b0undary--'), /more than one "file"/],
      [form('--b0undary--'), /no "file" field/],
      [form(part('file')), /cut short/],
      [form(part('file').slice(0, -4)), /cut short/],
      [form('--b0undary\r\ncontent-disposition: form-data; name="file"'), /inside the headers/],
      [form('--b0undary\r\n\r\nxx\r\n--b0undary--'), /no Content-Disposition/],
      [
        form('--b0undary\r\ncontent-disposition: attachment; name="file"\r\n\r\nx\r\n--b0undary--'),
        /not form-data/,
      ],
      [
        form('--b0undary\r\ncontent-disposition: form-data; filename="a"\r\n\r\nx\r\n--b0undary--'),
        /no field name/,
      ],
      [form('--b0undary\r\nbroken header\r\n\r\nx\r\n--b0undary--'), /malformed header/],
      [
        form(
          `--b0undary\r\ncontent-disposition: form-data; name="file"\r\ncontent-transfer-encoding: base64\r\n\r\nx\r\n--b0undary--`,
        ),
        /base64 is not supported/,
      ],
      [form('--b0undaryX\r\n'), /boundary line is malformed/],
      [form('no boundary at all'), /no multipart boundary/],
      [
        form(
          `--b0undary\r\ncontent-disposition: form-data; name="file"\r\n${'x-pad: y\r\n'.repeat(1000)}\r\nx\r\n--b0undary--`,
        ),
        /too many headers/,
      ],
    ];
    for (const [body, message] of cases) {
      expect(() => parseFilePart(body, CT, { maxFileBytes: 100 }), message.source).toThrow(MultipartError);
      expect(() => parseFilePart(body, CT, { maxFileBytes: 100 }), message.source).toThrow(message);
    }
  });

  it('refuses a content-type without a valid boundary', () => {
    expect(boundaryOf('multipart/form-data; charset=utf-8; boundary=abc')).toBe('abc');
    for (const bad of [
      'multipart/form-data',
      'multipart/form-data; boundary=',
      `multipart/form-data; boundary=${'a'.repeat(71)}`,
      'multipart/form-data; boundary="ends in space "',
    ]) {
      expect(() => boundaryOf(bad), bad).toThrow(MultipartError);
    }
  });
});
