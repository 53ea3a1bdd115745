import { createHash } from 'node:crypto';

/** A version-8 ("custom", RFC 9562) uuid fixed by `text`: the same text always gives the same id. */
export function derivedUuid(text: string): string {
  const hex = createHash('sha256').update(text).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Transfer ids derived from the generation id, so every retry of reserve, commit or release (an
 * activity retry, a replayed workflow, a reconciler run) hits the same id and is a no-op.
 */
export function transferId(generationId: string, step: 'reserve' | 'commit' | 'release'): string {
  return derivedUuid(`velro:${step}:${generationId}`);
}
