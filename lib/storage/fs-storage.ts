import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from './hashing-stream';
import { assertSafeKey, type Storage, type StoredObject } from './storage';

/** Keeps objects as files under `root`; a write goes to a temp file, then is renamed into place. */
export class FsStorage implements Storage {
  readonly driver = 'fs' as const;

  constructor(private readonly root: string) {}

  async put(key: string, body: Readable, _contentType: string, maxBytes?: number): Promise<StoredObject> {
    const target = this.pathOf(key);
    await fs.mkdir(path.dirname(target), { recursive: true });
    const temp = `${target}.${randomUUID()}.partial`;
    const hashing = new HashingStream(maxBytes);
    try {
      await pipeline(body, hashing, createWriteStream(temp, { flags: 'wx' }));
      await fs.rename(temp, target);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
    return { bytes: hashing.bytes, sha256: hashing.sha256, head: hashing.head };
  }

  async get(key: string): Promise<{ body: Readable; bytes: number } | undefined> {
    const file = this.pathOf(key);
    try {
      const st = await fs.stat(file);
      return { body: createReadStream(file), bytes: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.pathOf(key), { force: true });
  }

  private pathOf(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, key);
  }
}
