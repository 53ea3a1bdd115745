import { createHash } from 'node:crypto';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Db } from '../db/pool';
import { hitRateLimit, peekRateLimit, type WindowCount } from './store';

export interface SharedStoreOptions {
  db: Db;
  /**
   * What the API processes of one deployment share, and other deployments on the same database do
   * not: it prefixes every bucket.
   */
  deployment: string;
  /** How long a count may take, waiting for a connection included, before the request is refused. */
  timeoutMs: number;
  /** The error a request gets when the count cannot be had (the limiter throws it). */
  unavailable(cause: unknown): Error;
}

type Callback = (err: Error | null, res?: WindowCount) => void;

/**
 * @fastify/rate-limit's `store` (its `incr`, `read` and `child`), counting in Postgres: the limiter
 * gives the bucket's key and the window, gets back the hits and the milliseconds left, and decides
 * itself. A count that cannot be had fails the request (`unavailable`), never lets it through.
 * Windows are fixed from a bucket's first hit; `continueExceeding`, `exponentialBackoff` and `ban`
 * (which Velro does not use) are not supported.
 * As with the in-memory store, a route with a limit of its own counts on its own (its buckets are
 * prefixed by its method and URL); a limiter from `createRateLimit` counts in the global limit's
 * buckets, so its keys need a prefix of their own.
 */
export function sharedRateLimitStore(opts: SharedStoreOptions): FastifyRateLimitStoreCtor {
  // A short prefix whatever the deployment's name (a bucket is at most 1,000 characters).
  const prefix =
    opts.deployment.length <= 64
      ? opts.deployment
      : createHash('sha256').update(opts.deployment).digest('base64url').slice(0, 22);

  const answer = (pending: Promise<WindowCount>, cb: Callback) =>
    pending.then(
      (count) => cb(null, count),
      (err: unknown) => cb(opts.unavailable(err)),
    );

  class SharedRateLimitStore implements FastifyRateLimitStore {
    // The limiter constructs the root store with its options (unused here); children set their scope.
    private scope = prefix;

    incr(key: string, cb: Callback, timeWindow: number): void {
      void answer(hitRateLimit(opts.db, `${this.scope}|${key}`, timeWindow, opts.timeoutMs), cb);
    }

    read(key: string, cb: Callback): void {
      void answer(peekRateLimit(opts.db, `${this.scope}|${key}`, opts.timeoutMs), cb);
    }

    // The limiter passes its merged options, with the route under `routeInfo` (not what its types say).
    child(params: object): FastifyRateLimitStore {
      const route = (params as { routeInfo?: { method?: string | string[]; url?: string } }).routeInfo;
      const child = new SharedRateLimitStore();
      child.scope = route?.url
        ? `${this.scope}|${[route.method ?? ''].flat().join(',')} ${route.url}`
        : this.scope;
      return child;
    }
  }
  return SharedRateLimitStore;
}
