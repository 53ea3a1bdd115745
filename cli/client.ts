import type { CliConfig } from './config';

/** An API error, with the problem+json the server sent. */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class VelroClient {
  constructor(private readonly config: CliConfig) {}

  get baseUrl(): string {
    return this.config.url;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    if (!this.config.key) {
      throw new ApiCallError(
        401,
        'unauthorized',
        'No API key: run `velro login`, or set VELRO_API_KEY, or pass --key.',
      );
    }
    return { authorization: `Bearer ${this.config.key}`, ...extra };
  }

  request<T>(
    method: string,
    path: string,
    body?: unknown,
    extraHeaders: Record<string, string> = {},
  ): Promise<T> {
    return this.send<T>(path, 90_000, () => ({
      method,
      headers: this.headers(
        body === undefined ? extraHeaders : { 'content-type': 'application/json', ...extraHeaders },
      ),
      body: body === undefined ? undefined : JSON.stringify(body),
    }));
  }

  /** Stores an image (its raw bytes) as an upload, the team's with `teamId`. */
  upload<T>(bytes: Buffer, contentType: string, teamId?: string): Promise<T> {
    const query = teamId ? `?teamId=${encodeURIComponent(teamId)}` : '';
    return this.send<T>(`/v1/uploads${query}`, 300_000, () => ({
      method: 'POST',
      headers: this.headers({ 'content-type': contentType }),
      body: bytes,
    }));
  }

  /** One call: its answer's JSON, or an ApiCallError with the problem's code and detail. */
  private async send<T>(path: string, timeoutMs: number, init: () => RequestInit): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.config.url}${path}`, { ...init(), signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      if (err instanceof ApiCallError) throw err;
      throw new ApiCallError(
        0,
        'unreachable',
        `Cannot reach Velro at ${this.config.url}: ${(err as Error).message}`,
      );
    }
    const text = await res.text();
    const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!res.ok) {
      throw new ApiCallError(res.status, String(json.code ?? 'error'), String(json.detail ?? res.statusText));
    }
    return json as T;
  }

  /** Yields the generation's Server-Sent Events until the server closes the stream. */
  async *events(generationId: string): AsyncGenerator<{ event: string; data: Record<string, unknown> }> {
    const res = await fetch(`${this.config.url}/v1/generations/${generationId}/events`, {
      headers: this.headers({ accept: 'text/event-stream' }),
    });
    if (!res.ok || !res.body)
      throw new ApiCallError(res.status, 'events_unavailable', `event stream: HTTP ${res.status}`);
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) yield { event, data: JSON.parse(data) as Record<string, unknown> };
      }
    }
  }

  async download(url: string): Promise<Buffer> {
    const res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
    if (!res.ok) throw new ApiCallError(res.status, 'download_failed', `download failed: HTTP ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  }
}
