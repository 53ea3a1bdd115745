import { existsSync } from 'node:fs';
import path from 'node:path';

/** The folder holding package.json, whether this runs from the sources or from dist/. */
function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'db', 'migrations')))
      return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Velro project root above ${start}`);
  }
}

export const PROJECT_ROOT = findProjectRoot(__dirname);
