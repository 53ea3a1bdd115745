// The fault test's client: real HTTP through the cluster's proxy, every answer recorded.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Answer {
  /** When the request was sent and when its answer (or failure) came, ms since the epoch. */
  sentAt: number;
  doneAt: number;
  method: string;
  route: string;
  /** 0: no HTTP answer at all (connection failed, or no answer within the timeout). */
  status: number;
  code?: string;
  retryAfter?: string | null;
  error?: string;
}

export interface Tracked {
  id: string;
  status: string;
  credits?: { amount: number; state: string };
  completedAt?: number;
}

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);
/**
 * Longer than the API's own bounds (a submit waits up to ADMISSION_TIMEOUT_MS, 30 s, for admission,
 * then up to 10 s to cancel what it started), so a slow answer is seen, and reported, as what it is.
 */
const REQUEST_TIMEOUT_MS = 45_000;

export class Traffic {
  readonly answers: Answer[] = [];
  readonly generations = new Map<string, Tracked>();

  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  async call(
    method: string,
    route: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
  ): Promise<{ status: number; body?: any }> {
    const sentAt = Date.now();
    try {
      const res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await res.text();
      let json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      this.answers.push({
        sentAt,
        doneAt: Date.now(),
        method,
        route,
        status: res.status,
        code: res.status >= 400 ? json?.code : undefined,
        retryAfter: res.headers.get('retry-after'),
      });
      return { status: res.status, body: json };
    } catch (err) {
      const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.answers.push({ sentAt, doneAt: Date.now(), method, route, status: 0, error });
      return { status: 0 };
    }
  }

  /**
   * Submits one generation, as a careful client does: one Idempotency-Key, the same request again
   * after a 502, a 503 or no answer, until it is accepted (with a new key after a 409
   * `idempotency_key_used`: its first try was not admitted in time and was canceled).
   */
  async submit(prompt: string): Promise<string> {
    let key = randomUUID();
    const deadline = Date.now() + 180_000;
    for (;;) {
      const res = await this.call(
        'POST',
        'POST /v1/generations',
        '/v1/generations',
        { model: 'flux-pro-v1.1-ultra', input: { prompt, aspect_ratio: '1:1' } },
        { 'idempotency-key': key },
      );
      if (res.status === 202 || res.status === 200) {
        const id = String(res.body.id);
        if (!this.generations.has(id)) this.generations.set(id, { id, status: String(res.body.status) });
        return id;
      }
      // The key's first try timed out in admission and was canceled: as the API says, a new key.
      if (res.status === 409 && res.body?.code === 'idempotency_key_used') {
        key = randomUUID();
        continue;
      }
      const retryable = res.status === 0 || res.status === 502 || res.status === 503 || res.status === 409;
      if (!retryable || Date.now() > deadline)
        throw new Error(`a submit was answered ${res.status}: ${JSON.stringify(res.body)}`);
      await sleep(500);
    }
  }

  /** One GET of each tracked generation (a few at a time); updates what is known of it. */
  async pollAll(concurrency = 6): Promise<void> {
    const ids = [...this.generations.keys()];
    const work = async () => {
      for (let id = ids.shift(); id; id = ids.shift()) {
        const res = await this.call('GET', 'GET /v1/generations/:id', `/v1/generations/${id}`);
        if (res.status !== 200) continue;
        const g = this.generations.get(id)!;
        g.status = String(res.body.status);
        g.credits = res.body.credits;
        if (res.body.completedAt) g.completedAt = Date.parse(res.body.completedAt);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, work));
  }

  unfinished(): Tracked[] {
    return [...this.generations.values()].filter((g) => !TERMINAL.has(g.status));
  }
}
