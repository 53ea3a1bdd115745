import type pg from 'pg';
import type { CredentialCache } from './credential-cache';

/** The channel db/migrations/013_read_path.sql notifies: `key:<id>`, `user:<id>` or `all`. */
export const AUTH_CHANNEL = 'velro_auth';

export interface RevocationFeedOptions {
  /** A new, unconnected client of the API's own login (it only LISTENs). */
  connect: () => pg.Client;
  cache: CredentialCache;
  log: { warn(details: object, message: string): void };
  /** How often the idle connection is checked (a cut that no packet reports is found by the check). */
  pingMs?: number;
  /** Reconnection waits double from 100 ms up to this. */
  maxBackoffMs?: number;
}

/**
 * One LISTEN connection that evicts from the credential cache what the database says has changed,
 * whoever changed it (this process, another replica, `npm run admin`, SQL). The cache is live only
 * while this connection is: on a cut it is cleared and bypassed, and cleared again on reconnect.
 */
export class RevocationFeed {
  private client: pg.Client | null = null;
  private closed = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: RevocationFeedOptions) {}

  start(): void {
    this.running ??= this.run();
  }

  /** Whether the feed is connected now (the cache is used). */
  get connected(): boolean {
    return this.client !== null;
  }

  /**
   * Resolves once every notification of a transaction committed before the call has been applied:
   * Postgres sends a listener's pending notifications before the answer to its next query.
   */
  async barrier(): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      await client.query('SELECT 1');
    } catch {
      // Not known to be applied: stop trusting the cache until the feed is back.
      this.opts.cache.setLive(false);
      await client.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.client?.end().catch(() => undefined);
    await this.running;
  }

  private apply(payload: string | undefined): void {
    const [kind, id] = (payload ?? '').split(':', 2);
    if (kind === 'key' && id) this.opts.cache.forgetApiKey(id);
    else if (kind === 'user' && id) this.opts.cache.forgetUser(id);
    else this.opts.cache.clear();
  }

  private async run(): Promise<void> {
    const maxBackoff = this.opts.maxBackoffMs ?? 5_000;
    let backoff = 100;
    let reported = false; // one warning an outage, not one a retry
    while (!this.closed) {
      const { wasLive, err } = await this.session();
      if (this.closed) break;
      if (wasLive) {
        backoff = 100;
        reported = false;
      }
      if (!reported) {
        this.opts.log.warn({ err }, 'credential revocation feed down; authenticating from the database');
        reported = true;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      backoff = Math.min(backoff * 2, maxBackoff);
    }
  }

  /** One connection's life, until it ends: whether it was live, and why it ended. */
  private async session(): Promise<{ wasLive: boolean; err?: unknown }> {
    const client = this.opts.connect();
    const ended = new Promise<unknown>((resolve) => {
      client.on('error', resolve);
      client.on('end', () => resolve(new Error('connection ended')));
    });
    client.on('notification', (msg) => {
      if (msg.channel === AUTH_CHANNEL) this.apply(msg.payload);
    });
    let ping: NodeJS.Timeout | undefined;
    let wasLive = false;
    try {
      await client.connect();
      await client.query(`LISTEN ${AUTH_CHANNEL}`);
      if (this.closed) return { wasLive };
      this.client = client;
      this.opts.cache.setLive(true);
      wasLive = true;
      ping = setInterval(() => {
        client.query('SELECT 1').catch(() => client.end().catch(() => undefined));
      }, this.opts.pingMs ?? 10_000);
      ping.unref();
      return { wasLive, err: await ended };
    } catch (err) {
      return { wasLive, err };
    } finally {
      clearInterval(ping);
      if (this.client === client) this.client = null;
      this.opts.cache.setLive(false);
      await client.end().catch(() => undefined);
    }
  }
}
