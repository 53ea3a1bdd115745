// Server-Sent Events clients on plain node:http: one socket per stream, events parsed as they
// arrive, the terminal one (`done`, or `error`) timed on arrival.
import http from 'node:http';

export interface SseStream {
  generationId: string;
  /** Resolves once the 200 answer's headers have arrived. */
  opened: Promise<void>;
  /** Names of the events received so far, in order. */
  events: string[];
  /** The terminal event, when it has arrived: its name, arrival (epoch ms) and data. */
  terminal?: { event: string; arrivedAt: number; data: unknown };
  /** Arrival (epoch ms) of the `status` event that first named a terminal status (before `done`). */
  terminalStatusAt?: number;
  /** The server ended the stream (after the terminal event, or without one). */
  ended: boolean;
  close(): void;
}

const TERMINAL_EVENTS = new Set(['done', 'error']);
const TERMINAL_STATUSES = new Set(['succeeded', 'failed', 'canceled']);

export function openStream(baseUrl: string, generationId: string, authorization: string): SseStream {
  const url = new URL(`/v1/generations/${generationId}/events`, baseUrl);
  let resolveOpened!: () => void;
  let rejectOpened!: (err: Error) => void;
  const stream: SseStream = {
    generationId,
    opened: new Promise((resolve, reject) => {
      resolveOpened = resolve;
      rejectOpened = reject;
    }),
    events: [],
    ended: false,
    close: () => req.destroy(),
  };
  // agent: false: a socket of its own, outside any pool's limits.
  const req = http.get(
    url,
    { agent: false, headers: { authorization, accept: 'text/event-stream' } },
    (res) => {
      if (res.statusCode !== 200) {
        rejectOpened(new Error(`events of ${generationId} answered ${res.statusCode}`));
        res.resume();
        return;
      }
      resolveOpened();
      res.setEncoding('utf8');
      let buffer = '';
      res.on('data', (chunk: string) => {
        const arrivedAt = Date.now();
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const parsed = parseBlock(block);
          if (!parsed) continue;
          stream.events.push(parsed.event);
          const status = (parsed.data as { status?: string } | undefined)?.status;
          if (parsed.event === 'status' && status && TERMINAL_STATUSES.has(status)) {
            stream.terminalStatusAt ??= arrivedAt;
          }
          if (TERMINAL_EVENTS.has(parsed.event) && !stream.terminal) {
            stream.terminal = { event: parsed.event, arrivedAt, data: parsed.data };
          }
        }
      });
      res.on('end', () => (stream.ended = true));
      res.on('error', () => (stream.ended = true));
    },
  );
  req.on('error', (err) => {
    stream.ended = true;
    rejectOpened(err);
  });
  return stream;
}

/** One event block: `event:` and `data:` lines (comments and `retry:` alone make none). */
function parseBlock(block: string): { event: string; data: unknown } | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (data.length === 0) return undefined;
  const text = data.join('\n');
  try {
    return { event, data: JSON.parse(text) as unknown };
  } catch {
    return { event, data: text };
  }
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function inBatches<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}
