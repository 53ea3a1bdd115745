import type { Readable } from 'node:stream';

export interface StoredObject {
  bytes: number;
  sha256: string;
  /** The first bytes (up to 64 KiB), so callers can read dimensions without a second pass. */
  head: Buffer;
}

/** Where Velro keeps generation outputs. Bodies are streamed, never held whole in memory. */
export interface Storage {
  readonly driver: 'fs' | 's3';
  /** Writes `body` under `key` atomically (readers never see half an object); hashes as it streams. */
  put(key: string, body: Readable, contentType: string, maxBytes?: number): Promise<StoredObject>;
  /** Opens `key` for reading, or undefined when there is no such object. */
  get(key: string): Promise<{ body: Readable; bytes: number } | undefined>;
  /** Removes `key`; a key with no object is no error (a retried delete, an object never written). */
  delete(key: string): Promise<void>;
}

export class ObjectTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`object is larger than ${maxBytes} bytes`);
  }
}

export const HEAD_BYTES = 64 * 1024;

/** Storage keys are ours (generation id / position + extension); anything else is a bug. */
export function assertSafeKey(key: string): void {
  if (!/^[a-z0-9][a-z0-9._/-]{0,200}$/i.test(key) || key.includes('..') || key.includes('//')) {
    throw new Error(`unsafe storage key: ${key}`);
  }
}
