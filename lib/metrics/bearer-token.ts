import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * A check of `Authorization: Bearer <token>` against METRICS_TOKEN, or undefined when no token is
 * set (the metrics are open). The API's and the worker's /metrics share it.
 */
export function bearerTokenCheck(
  token: string | undefined,
): ((authorization?: string) => boolean) | undefined {
  if (!token) return undefined;
  const expected = digest(token);
  return (authorization) => {
    const match = /^Bearer +(\S+)$/i.exec(authorization ?? '');
    // Digests of equal length, so neither the comparison nor its length check leaks the token.
    return timingSafeEqual(digest(match?.[1] ?? ''), expected) && match !== null;
  };
}
