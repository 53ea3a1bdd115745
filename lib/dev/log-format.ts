// Development only (lib/dev/): `npm start`'s one readable log stream.
const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
// Noise for a terminal: the task token is an opaque blob, sdkComponent repeats on every worker line.
const SKIP = new Set([
  'level',
  'time',
  'msg',
  'pid',
  'hostname',
  'process',
  'v',
  'taskToken',
  'sdkComponent',
]);

/** One readable line from a pino JSON line (or any other line): `12:00:01 api  INFO  message key=value`. */
export function formatLogLine(component: string, line: string, now = new Date()): string {
  const time = now.toTimeString().slice(0, 8);
  const tag = component.padEnd(8);
  if (!line.startsWith('{')) return `${time} ${tag} ${line}`;
  try {
    const entry = JSON.parse(line) as Record<string, unknown>;
    const level = LEVELS[entry.level as number] ?? String(entry.level ?? '');
    const extras = Object.entries(entry)
      .filter(([k]) => !SKIP.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join(' ');
    return `${time} ${tag} ${level.padEnd(5)} ${String(entry.msg ?? '')}${extras ? `  ${extras}` : ''}`;
  } catch {
    return `${time} ${tag} ${line}`;
  }
}
