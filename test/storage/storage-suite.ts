import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEAD_BYTES, ObjectTooLargeError, type Storage } from '../../lib/storage/storage';

const MiB = 1024 * 1024;

/**
 * A deterministic pseudo-random body of `size` bytes (AES-CTR keystream from `seed`), made chunk by
 * chunk of varying sizes as it is read, never held whole. `expected` is hashed here, independently
 * of the storage's own hashing, as the bytes go out.
 */
function generatedBody(size: number, seed: string, failAt?: number) {
  const expected = { bytes: 0, hash: createHash('sha256') };
  async function* chunks() {
    const key = createHash('sha256').update(seed).digest().subarray(0, 16);
    const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
    let sent = 0;
    for (let i = 0; sent < size; i++) {
      if (failAt !== undefined && sent >= failAt) throw new Error('the source broke off');
      const length = Math.min(size - sent, 1000 + ((i * 7919) % 150_000));
      const chunk = cipher.update(Buffer.alloc(length));
      expected.hash.update(chunk);
      expected.bytes += length;
      sent += length;
      yield chunk;
    }
  }
  return {
    body: Readable.from(chunks(), { objectMode: false }),
    expected: () => ({ bytes: expected.bytes, sha256: expected.hash.copy().digest('hex') }),
  };
}

/** The first `n` bytes of the body `generatedBody(size, seed)` makes. */
async function prefixOf(size: number, seed: string, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of generatedBody(size, seed).body) {
    parts.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length >= n) break;
  }
  return Buffer.concat(parts).subarray(0, n);
}

/** Reads a stored object back as a stream, hashing it without keeping it. */
async function readBack(storage: Storage, key: string) {
  const object = await storage.get(key);
  if (!object) return undefined;
  const hash = createHash('sha256');
  let streamed = 0;
  for await (const chunk of object.body) {
    hash.update(chunk as Buffer);
    streamed += (chunk as Buffer).length;
  }
  return { bytes: object.bytes, streamed, sha256: hash.digest('hex') };
}

async function readSmall(storage: Storage, key: string): Promise<Buffer | undefined> {
  const object = await storage.get(key);
  if (!object) return undefined;
  const parts: Buffer[] = [];
  for await (const chunk of object.body) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

export interface StorageSuiteOptions {
  /** A driver-specific check that a refused put left nothing behind (e.g. no multipart upload). */
  leftNothingBehind?: (key: string) => Promise<void>;
}

/** The behaviour every storage driver must have; each driver's test file runs it on its own. */
export function storageSuite(
  name: string,
  factory: () => Promise<Storage> | Storage,
  options: StorageSuiteOptions = {},
  close?: (storage: Storage) => Promise<void> | void,
) {
  describe(`${name} storage`, () => {
    let storage: Storage;
    const keyOf = (leaf: string) => `suite/${randomUUID()}/${leaf}`;

    beforeAll(async () => {
      storage = await factory();
    });
    afterAll(async () => {
      if (storage && close) await close(storage);
    });

    it('stores a multi-MiB streamed body and gives the same bytes back, with its size and sha256', async () => {
      const size = 20 * MiB + 77;
      const key = keyOf('big.bin');
      const { body, expected } = generatedBody(size, key);
      const stored = await storage.put(key, body, 'application/octet-stream');
      expect(expected().bytes).toBe(size);
      expect({ bytes: stored.bytes, sha256: stored.sha256 }).toEqual(expected());
      expect(await readBack(storage, key)).toEqual({
        bytes: size,
        streamed: size,
        sha256: expected().sha256,
      });
    });

    it('returns the first 64 KiB as the head, or the whole object when smaller', async () => {
      const key = keyOf('head.bin');
      const size = 3 * MiB;
      const stored = await storage.put(key, generatedBody(size, key).body, 'application/octet-stream');
      expect(stored.head.length).toBe(HEAD_BYTES);
      expect(stored.head.equals(await prefixOf(size, key, HEAD_BYTES))).toBe(true);

      const small = keyOf('small.png');
      const content = Buffer.from('a small object, under the head size');
      const tiny = await storage.put(small, Readable.from([content]), 'image/png');
      expect(tiny.head.equals(content)).toBe(true);
      expect(tiny.bytes).toBe(content.length);
      expect(tiny.sha256).toBe(createHash('sha256').update(content).digest('hex'));
      expect((await readSmall(storage, small))?.equals(content)).toBe(true);
    });

    it('stores an empty body', async () => {
      const key = keyOf('empty.bin');
      const stored = await storage.put(key, Readable.from([]), 'application/octet-stream');
      expect(stored.bytes).toBe(0);
      expect(stored.sha256).toBe(createHash('sha256').digest('hex'));
      expect((await readSmall(storage, key))?.length).toBe(0);
    });

    it('answers undefined for a key that was never written', async () => {
      expect(await storage.get(keyOf('missing.png'))).toBeUndefined();
    });

    it('refuses a body over the size cap with ObjectTooLargeError and keeps nothing at the key', async () => {
      // Under one part, and past the first multipart part (8 MiB) of the S3 driver.
      for (const [cap, size] of [
        [1 * MiB, 2 * MiB],
        [10 * MiB, 20 * MiB],
      ] as const) {
        const key = keyOf(`capped-${cap}.bin`);
        const put = storage.put(key, generatedBody(size, key).body, 'application/octet-stream', cap);
        await expect(put).rejects.toBeInstanceOf(ObjectTooLargeError);
        await expect(put).rejects.toMatchObject({ maxBytes: cap });
        expect(await storage.get(key)).toBeUndefined();
        await options.leftNothingBehind?.(key);
      }
    });

    it('accepts a body of exactly the size cap', async () => {
      const key = keyOf('exact.bin');
      const { body, expected } = generatedBody(MiB, key);
      const stored = await storage.put(key, body, 'application/octet-stream', MiB);
      expect(stored.bytes).toBe(MiB);
      expect((await readBack(storage, key))?.sha256).toBe(expected().sha256);
    });

    it('keeps the previous object when a put over the same key is refused or its source fails', async () => {
      const key = keyOf('kept.png');
      const first = Buffer.from('the first version');
      await storage.put(key, Readable.from([first]), 'image/png');
      await expect(
        storage.put(key, generatedBody(2 * MiB, key).body, 'image/png', MiB),
      ).rejects.toBeInstanceOf(ObjectTooLargeError);
      await expect(storage.put(key, generatedBody(2 * MiB, key, MiB).body, 'image/png')).rejects.toThrow(
        'the source broke off',
      );
      expect((await readSmall(storage, key))?.equals(first)).toBe(true);
    });

    it('keeps nothing when the source fails mid-way', async () => {
      const key = keyOf('broken.bin');
      await expect(
        storage.put(key, generatedBody(12 * MiB, key, 9 * MiB).body, 'application/octet-stream'),
      ).rejects.toThrow('the source broke off');
      expect(await storage.get(key)).toBeUndefined();
      await options.leftNothingBehind?.(key);
    });

    it('overwrites a key: the second put is what is read', async () => {
      const key = keyOf('over.bin');
      await storage.put(key, generatedBody(MiB, 'first').body, 'application/octet-stream');
      const second = generatedBody(MiB + 5, 'second');
      const stored = await storage.put(key, second.body, 'application/octet-stream');
      expect(stored.sha256).toBe(second.expected().sha256);
      expect(await readBack(storage, key)).toEqual({
        bytes: MiB + 5,
        streamed: MiB + 5,
        sha256: second.expected().sha256,
      });
    });

    it('deletes a key, and takes a delete of a key with no object (again, or never written)', async () => {
      const key = keyOf('deleted.png');
      const kept = keyOf('kept-beside.png');
      await storage.put(key, Readable.from([Buffer.from('to be deleted')]), 'image/png');
      await storage.put(kept, Readable.from([Buffer.from('stays')]), 'image/png');
      await storage.delete(key);
      expect(await storage.get(key)).toBeUndefined();
      await storage.delete(key);
      await storage.delete(keyOf('never-written.png'));
      expect((await readSmall(storage, kept))?.toString()).toBe('stays');
      // Written again after a delete: an ordinary object.
      await storage.put(key, Readable.from([Buffer.from('again')]), 'image/png');
      expect((await readSmall(storage, key))?.toString()).toBe('again');
    });

    it('rejects unsafe keys on put, get and delete', async () => {
      for (const key of [
        '',
        '../escape.png',
        'generations/../../etc/passwd',
        '/absolute.png',
        'a//b.png',
        'a b.png',
        '.hidden',
        'x'.repeat(300),
        'generations\\x.png',
      ]) {
        await expect(storage.put(key, Readable.from([Buffer.from('x')]), 'image/png')).rejects.toThrow(
          /unsafe storage key/,
        );
        await expect(storage.get(key)).rejects.toThrow(/unsafe storage key/);
        await expect(storage.delete(key)).rejects.toThrow(/unsafe storage key/);
      }
    });

    it('stores concurrent puts of different keys, each intact', async () => {
      const items = Array.from({ length: 8 }, (_, i) => ({
        key: keyOf(`concurrent-${i}.bin`),
        size: 256 * 1024 + i * 97_003,
      }));
      const results = await Promise.all(
        items.map(async ({ key, size }) => {
          const { body, expected } = generatedBody(size, key);
          const stored = await storage.put(key, body, 'application/octet-stream');
          return { stored, expected: expected() };
        }),
      );
      for (const [i, { key, size }] of items.entries()) {
        const { stored, expected } = results[i]!;
        expect({ bytes: stored.bytes, sha256: stored.sha256 }).toEqual(expected);
        expect(await readBack(storage, key)).toEqual({
          bytes: size,
          streamed: size,
          sha256: expected.sha256,
        });
      }
    });
  });
}
