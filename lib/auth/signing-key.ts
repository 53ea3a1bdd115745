import { createHash } from 'node:crypto';
import type { Config } from '../config';
import { localSecret } from './local-secret';

/** The key that signs asset URLs: derived from JWT_SECRET when set, else generated once per data dir. */
export async function assetSigningKey(config: Config): Promise<Buffer> {
  if (config.JWT_SECRET) return createHash('sha256').update(`velro-asset-urls:${config.JWT_SECRET}`).digest();
  return localSecret(config.dataDir, 'asset-signing-key');
}
