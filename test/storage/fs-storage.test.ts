import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect } from 'vitest';
import { FsStorage } from '../../lib/storage/fs-storage';
import { storageSuite } from './storage-suite';

let root: string | undefined;

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

storageSuite(
  'fs',
  async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'velro-fs-storage-'));
    return new FsStorage(root);
  },
  {
    // No file at the key, and no temp file of the refused write beside it.
    async leftNothingBehind(key) {
      const dir = path.join(root!, path.dirname(key));
      const left = await fs.readdir(dir).catch(() => []);
      expect(left.filter((f) => f.startsWith(path.basename(key)))).toEqual([]);
    },
  },
);
