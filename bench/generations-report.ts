// The generations bench's figures: each a value beside its same-run ceiling, the ratio, and the
// issue #16 target where it has one; printed as a table and written as JSON.
import fs from 'node:fs/promises';
import path from 'node:path';

export interface Target {
  /** The ratio must be at least (`>=`) or at most (`<=`) `ratio`. */
  op: '>=' | '<=';
  ratio: number;
}

export interface Figure {
  section: string;
  figure: string;
  value: number;
  unit: string;
  ceilingFigure: string;
  ceiling: number;
  ratio: number;
  target: Target | null;
  met: boolean | null;
}

export class Report {
  readonly figures: Figure[] = [];
  readonly details: Record<string, unknown> = {};

  /** `onFigure`: each figure's table row as soon as it is measured (a long run shows its progress). */
  constructor(private readonly onFigure: (row: string) => void = () => {}) {}

  add(
    section: string,
    figure: string,
    value: number,
    unit: string,
    ceiling: { figure: string; value: number },
    target?: Target,
  ): void {
    const ratio = value / ceiling.value;
    const met = target ? (target.op === '>=' ? ratio >= target.ratio : ratio <= target.ratio) : null;
    const entry: Figure = {
      section,
      figure,
      value,
      unit,
      ceilingFigure: ceiling.figure,
      ceiling: ceiling.value,
      ratio,
      target: target ?? null,
      met,
    };
    this.figures.push(entry);
    this.onFigure(row(entry));
  }

  table(): string[] {
    const lines = [
      '| figure | value | ceiling (same run) | ratio | target | met? |',
      '| --- | --- | --- | --- | --- | --- |',
    ];
    return [...lines, ...this.figures.map(row)];
  }

  async write(file: string, meta: Record<string, unknown>): Promise<void> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const json = { ...meta, figures: this.figures, details: this.details };
    await fs.writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  }
}

const num = (n: number) =>
  Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);

function row(f: Figure): string {
  const ratio = Number.isFinite(f.ratio) ? `${f.ratio.toFixed(2)}×` : 'n/a';
  const target = f.target ? `${f.target.op} ${f.target.ratio}×` : '—';
  const met = f.met === null ? '—' : f.met ? 'yes' : '**no**';
  return `| ${f.figure} | ${num(f.value)} ${f.unit} | ${f.ceilingFigure}: ${num(f.ceiling)} ${f.unit} | ${ratio} | ${target} | ${met} |`;
}
