// The fault test's recovery table, printed after a run (and pasted into the README).
import type { Answer } from './traffic';

export interface FaultRecord {
  name: string;
  /** When the fault was injected (kill / stop sent), when the component was gone, when it was back. */
  at: number;
  downAt: number;
  healedAt: number;
  /** The first generation completion (its completedAt) that counts as recovered; see the test. */
  completion?: number;
  /** The first 200 to a request sent after the component was gone. */
  first200?: number;
  /** Every answer to a request sent from this fault until the next one. */
  answers: Answer[];
}

const seconds = (ms: number | undefined) => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);

export function formatRecoveryTable(records: FaultRecord[]): string {
  const header = [
    'fault',
    'down (inject→gone)',
    'back (gone→started)',
    'first 200 after gone',
    'first completion after fault',
    'answers',
    'slowest answer',
    'non-2xx',
  ];
  const rows = records.map((r) => {
    const non2xx = new Map<string, number>();
    for (const a of r.answers) {
      if (a.status >= 200 && a.status < 300) continue;
      const key = `${a.status}${a.code ? ` ${a.code}` : ''}`;
      non2xx.set(key, (non2xx.get(key) ?? 0) + 1);
    }
    return [
      r.name,
      seconds(r.downAt - r.at),
      seconds(r.healedAt - r.downAt),
      seconds(r.first200 === undefined ? undefined : r.first200 - r.downAt),
      seconds(r.completion === undefined ? undefined : r.completion - r.at),
      String(r.answers.length),
      seconds(Math.max(0, ...r.answers.map((a) => a.doneAt - a.sentAt))),
      [...non2xx.entries()].map(([k, n]) => `${n}× ${k}`).join(', ') || 'none',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
