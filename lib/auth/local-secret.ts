import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * A secret generated once for this installation and kept under VELRO_DATA_DIR (development only;
 * production passes secrets through the environment).
 */
export async function localSecret(dataDir: string, name: string): Promise<Buffer> {
  const file = path.join(dataDir, 'secrets', name);
  try {
    return Buffer.from((await fs.readFile(file, 'utf8')).trim(), 'base64url');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const secret = randomBytes(32);
  try {
    await fs.writeFile(file, secret.toString('base64url'), { flag: 'wx', mode: 0o600 });
    return secret;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return localSecret(dataDir, name);
    throw err;
  }
}
