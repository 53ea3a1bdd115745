// Server-Sent Events as the tests read them (GET /v1/generations/:id/events).

/** One event of a stream; `data` parsed as JSON. */
export interface SseEvent {
  id?: string;
  event?: string;
  data?: unknown;
}

/** One Server-Sent Events block (`id:`, `event:`, `data:` lines), or undefined for a comment or retry line. */
export function parseEvent(block: string): SseEvent | undefined {
  if (!block.trim() || block.startsWith(':') || block.startsWith('retry')) return undefined;
  const e: SseEvent = {};
  for (const line of block.split('\n')) {
    const [field, ...rest] = line.split(': ');
    const value = rest.join(': ');
    if (field === 'id') e.id = value;
    if (field === 'event') e.event = value;
    if (field === 'data') e.data = JSON.parse(value);
  }
  return e;
}
