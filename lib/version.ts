import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The package version, read once (works from the sources and from dist/). */
function readVersion(): string {
  for (const up of ['..', '../..']) {
    try {
      return (JSON.parse(readFileSync(path.join(__dirname, up, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // try the next level up
    }
  }
  return '0.0.0';
}

export const VERSION = readVersion();
