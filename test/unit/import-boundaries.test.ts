import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/paths';

// Imports go one way (../shared/DESIGN.md, Layout): lib/ is the domain and imports no project folder
// but itself; activities/ never reaches into the API or the processes; workflow code imports only
// workflows/, activity types and lib/'s pure modules; the API starts workflows by their definitions.

const SCANNED = ['api', 'activities', 'workflows', 'worker', 'lib', 'scripts', 'bench', 'cli'];

/** lib/ modules with no imports at all: deterministic, so workflow code may import them. */
const PURE_LIB = ['lib/generations/status.ts', 'lib/providers/names.ts', 'lib/temporal/search-attributes.ts'];

export interface ImportRef {
  /** The importing file, relative to the project root. */
  file: string;
  specifier: string;
  /** The imported file relative to the project root (`.ts` added), or null for a package. */
  target: string | null;
  typeOnly: boolean;
}

export interface SourceFile {
  file: string;
  text: string;
}

/** Every static import, re-export, dynamic import() and require() of a file. */
export function importsOf({ file, text }: SourceFile): ImportRef[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const refs: ImportRef[] = [];
  const add = (specifier: string, typeOnly: boolean) => {
    const target = specifier.startsWith('.')
      ? `${path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier))}.ts`.replace(
          /\.(ts|js)\.ts$/,
          '.ts',
        )
      : null;
    refs.push({ file, specifier, target, typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const allNamedTypes =
        !!named &&
        ts.isNamedImports(named) &&
        named.elements.length > 0 &&
        named.elements.every((e) => e.isTypeOnly) &&
        !clause.name;
      add(node.moduleSpecifier.text, !!clause && (clause.isTypeOnly || allNamedTypes));
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const clause = node.exportClause;
      const allNamedTypes =
        !!clause &&
        ts.isNamedExports(clause) &&
        clause.elements.length > 0 &&
        clause.elements.every((e) => e.isTypeOnly);
      add(node.moduleSpecifier.text, node.isTypeOnly || allNamedTypes);
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'require')) &&
      node.arguments.length === 1 &&
      ts.isStringLiteralLike(node.arguments[0]!)
    ) {
      add((node.arguments[0] as ts.StringLiteralLike).text, false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const literal = node.argument.literal;
      if (ts.isStringLiteral(literal)) add(literal.text, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return refs;
}

/** The top folder of a path; `activities.ts` (an import of the folder's index) is `activities`. */
const folderOf = (file: string) => file.split('/')[0]!.replace(/\.ts$/, '');

/** Why this import crosses a line, or undefined when it is allowed. */
export function crossing(ref: ImportRef): string | undefined {
  const from = folderOf(ref.file);
  if (PURE_LIB.includes(ref.file)) return 'a pure lib module imports nothing';
  if (ref.target === null) return undefined; // a package or a Node built-in
  const to = folderOf(ref.target);
  switch (from) {
    case 'lib':
      return to === 'lib' ? undefined : 'lib/ imports no project folder but lib/';
    case 'activities':
      return ['api', 'worker', 'scripts', 'bench', 'cli'].includes(to)
        ? 'activities/ never imports api/, worker/, scripts/ (nor bench/, cli/)'
        : undefined;
    case 'workflows':
      if (to === 'workflows') return undefined;
      if (to === 'activities' && ref.typeOnly) return undefined;
      if (PURE_LIB.includes(ref.target)) return undefined;
      return 'workflows/ imports only workflows/, activity types (import type) and the pure lib modules';
    case 'api':
      if (['activities', 'worker', 'scripts', 'bench', 'cli'].includes(to)) {
        return 'api/ never imports activities/, worker/, scripts/ (nor bench/, cli/)';
      }
      // A type-only import (a workflow's type for a typed handle) is erased: it bundles nothing.
      if (to === 'workflows' && ref.target !== 'workflows/definitions.ts' && !ref.typeOnly) {
        return 'api/ imports of workflows/ only workflows/definitions (other workflow modules: types only)';
      }
      return undefined;
    default:
      return undefined;
  }
}

/** One line per crossing: `file: import 'specifier' — rule`. */
export function findCrossings(files: SourceFile[]): string[] {
  return files.flatMap((f) =>
    importsOf(f).flatMap((ref) => {
      const why = crossing(ref);
      return why ? [`${ref.file}: import '${ref.specifier}' — ${why}`] : [];
    }),
  );
}

function projectFiles(): SourceFile[] {
  const files: SourceFile[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(PROJECT_ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.ts'))
        files.push({ file: rel, text: readFileSync(path.join(PROJECT_ROOT, rel), 'utf8') });
    }
  };
  for (const dir of SCANNED) walk(dir);
  return files;
}

describe('import boundaries', () => {
  it('no file of api/ activities/ workflows/ worker/ lib/ scripts/ bench/ cli/ imports across a line', () => {
    const files = projectFiles();
    expect(files.length).toBeGreaterThan(50);
    expect(findCrossings(files)).toEqual([]);
  });

  it('the pure lib modules exist (workflow code may import them)', () => {
    const files = new Set(projectFiles().map((f) => f.file));
    expect(PURE_LIB.filter((f) => !files.has(f))).toEqual([]);
  });

  it('the detector finds each kind of crossing in a synthetic tree, and passes what is allowed', () => {
    const crossings = findCrossings([
      {
        file: 'lib/ledger/x.ts',
        text: `import { a } from '../../scripts/temporal-cli';\nimport { b } from '../db/pool';`,
      },
      { file: 'lib/y.ts', text: `import type { T } from '../api/app';\nexport { c } from '../worker/main';` },
      {
        file: 'activities/z.ts',
        text: `import { v } from '../api/services/view';\nimport { d } from '../lib/db/pool';`,
      },
      { file: 'activities/w.ts', text: `const m = await import('../worker/create-worker');` },
      {
        file: 'workflows/g.ts',
        text: [
          `import type { createActivities } from '../activities';`,
          `import { createActivities as real } from '../activities';`,
          `import { isTerminal } from '../lib/generations/status';`,
          `import { withUserTx } from '../lib/db/pool';`,
          `import { x } from './definitions';`,
          `import { proxyActivities } from '@temporalio/workflow';`,
        ].join('\n'),
      },
      {
        file: 'api/routes/r.ts',
        text: [
          `import { generationWorkflowId } from '../../workflows/definitions';`,
          `import type { GenerationWorkflow } from '../../workflows/generation';`,
          `import { GenerationWorkflow as W } from '../../workflows/generation';`,
          `import { type ActivityDeps } from '../../activities';`,
          `import { x } from '../../lib/db/pool';`,
        ].join('\n'),
      },
      { file: 'lib/providers/names.ts', text: `import { z } from 'zod';` },
      { file: 'worker/main.ts', text: `import { createActivities } from '../activities';` },
    ]);
    expect(crossings).toEqual([
      `lib/ledger/x.ts: import '../../scripts/temporal-cli' — lib/ imports no project folder but lib/`,
      `lib/y.ts: import '../api/app' — lib/ imports no project folder but lib/`,
      `lib/y.ts: import '../worker/main' — lib/ imports no project folder but lib/`,
      `activities/z.ts: import '../api/services/view' — activities/ never imports api/, worker/, scripts/ (nor bench/, cli/)`,
      `activities/w.ts: import '../worker/create-worker' — activities/ never imports api/, worker/, scripts/ (nor bench/, cli/)`,
      `workflows/g.ts: import '../activities' — workflows/ imports only workflows/, activity types (import type) and the pure lib modules`,
      `workflows/g.ts: import '../lib/db/pool' — workflows/ imports only workflows/, activity types (import type) and the pure lib modules`,
      `api/routes/r.ts: import '../../workflows/generation' — api/ imports of workflows/ only workflows/definitions (other workflow modules: types only)`,
      `api/routes/r.ts: import '../../activities' — api/ never imports activities/, worker/, scripts/ (nor bench/, cli/)`,
      `lib/providers/names.ts: import 'zod' — a pure lib module imports nothing`,
    ]);
  });
});
