import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/paths';

// deploy/grafana/velro-dashboard.json against Grafana's own schema: the Dashboard type of the
// @grafana/schema package, which is where Grafana publishes it (it ships no JSON Schema). An
// imported .json widens every string to `string`, which no literal union (a variable's `type`, a
// row's `type: 'row'`) accepts and which escapes excess-property checks; so the file's text is
// compiled as an object literal typed Dashboard, which gets both. That the metrics its queries
// name are exported is checked against a real worker and API in test/e2e/worker-metrics.test.ts.

const FILE = path.join(PROJECT_ROOT, 'deploy/grafana/velro-dashboard.json');
const text = readFileSync(FILE, 'utf8');

interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
}
interface PanelJson {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: PanelJson[];
}
const dashboard = JSON.parse(text) as {
  schemaVersion: number;
  uid: string;
  panels: PanelJson[];
  templating: { list: { name: string; type: string; query: string }[] };
};

/** TypeScript's diagnostics for `const dashboard: Dashboard = <the file's text>`. */
function typeErrors(json: string): string[] {
  const file = path.join(PROJECT_ROOT, 'test/unit/__dashboard-type-check.ts');
  const source = `import type { Dashboard } from '@grafana/schema';\nexport const dashboard: Dashboard = ${json};\n`;
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    name === file ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

const panelsOf = (list: PanelJson[]): PanelJson[] => list.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
const queryPanels = panelsOf(dashboard.panels).filter((p) => p.type !== 'row');

describe('the Grafana dashboard', () => {
  it("is a Dashboard by @grafana/schema's type, literal values and excess properties included", () => {
    expect(typeErrors(text)).toEqual([]);
  }, 60_000);

  it('would be refused by that check with an unknown property or a wrong literal (the check can fail)', () => {
    const misspelt = text.replace('"schemaVersion"', '"schemaVersoin"');
    expect(typeErrors(misspelt).join('\n')).toMatch(/schemaVersoin/);
    const wrongType = text.replace('"type": "datasource"', '"type": "datasauce"');
    expect(typeErrors(wrongType).join('\n')).toMatch(/datasauce/);
    const inPanel = text.replace('"fieldConfig"', '"fieldConfg"');
    expect(typeErrors(inPanel).join('\n')).toMatch(/fieldConfg/);
  }, 60_000);

  it('uses a schemaVersion of Grafana 11 or later, a stable uid, and a Prometheus datasource variable', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }),
    );
  });

  it('has the panels the issue asks for', () => {
    const titles = queryPanels.map((p) => p.title);
    for (const wanted of [
      /request rate by route/i,
      /p95 latency by route/i,
      /5xx/i,
      /generations finished per second by model and outcome/i,
      /end-to-end latency p50 \/ p95/i,
      /provider errors/i,
      /unsettled/i,
      /slots in use \/ waiting/i,
      /schedule-to-start/i,
      /activity execution failures/i,
      /sticky cache/i,
      /pollers/i,
    ]) {
      expect(
        titles.some((t) => wanted.test(t)),
        String(wanted),
      ).toBe(true);
    }
  });

  it('gives every panel a unique id, a place on the 24-column grid no other panel takes, and its queries', () => {
    const all = panelsOf(dashboard.panels);
    expect(new Set(all.map((p) => p.id)).size).toBe(all.length);
    for (const [i, a] of all.entries()) {
      expect(a.gridPos.x + a.gridPos.w, a.title).toBeLessThanOrEqual(24);
      for (const b of all.slice(i + 1)) {
        const overlap =
          a.gridPos.x < b.gridPos.x + b.gridPos.w &&
          b.gridPos.x < a.gridPos.x + a.gridPos.w &&
          a.gridPos.y < b.gridPos.y + b.gridPos.h &&
          b.gridPos.y < a.gridPos.y + a.gridPos.h;
        expect(overlap, `${a.title} / ${b.title}`).toBe(false);
      }
    }
    for (const p of queryPanels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(new Set(p.targets!.map((t) => t.refId)).size, p.title).toBe(p.targets!.length);
      for (const t of p.targets!) {
        expect(t.expr.trim(), p.title).not.toBe('');
        expect(balanced(t.expr), `${p.title}: ${t.expr}`).toBe(true);
        // Counters and histograms only mean something as rates; gauges are read as they are.
        if (/_total\b|_bucket\b/.test(t.expr)) expect(t.expr, p.title).toMatch(/\brate\(/);
      }
    }
  });
});

/** Whether the expression's brackets and quotes pair up. */
function balanced(expr: string): boolean {
  const open: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let quoted = false;
  for (const c of expr) {
    if (c === '"') quoted = !quoted;
    else if (quoted) continue;
    else if ('([{'.includes(c)) open.push(c);
    else if (c in pairs && open.pop() !== pairs[c]) return false;
  }
  return !quoted && open.length === 0;
}
