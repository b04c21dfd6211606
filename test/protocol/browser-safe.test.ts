// The protocol core must run unchanged in browsers, so its sources may use
// no Node built-ins or Node globals.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../src/protocol');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

describe('protocol sources', () => {
  const files = sources(root);
  it('exist', () => {
    expect(files.length).toBeGreaterThan(10);
  });
  it.each(files.map((file) => [file.slice(root.length + 1), file]))('%s uses no Node APIs', (_name, file) => {
    const text = readFileSync(file, 'utf8').replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
    expect(text).not.toMatch(/from\s+['"]node:/);
    expect(text).not.toMatch(/import\(\s*['"]node:/);
    expect(text).not.toMatch(/require\(/);
    expect(text).not.toMatch(/from\s+['"](fs|path|crypto|util|os|buffer|process|child_process|net)['"]/);
    expect(text).not.toMatch(/\bBuffer\b/);
    expect(text).not.toMatch(/\bprocess\./);
    expect(text).not.toMatch(/\b__dirname\b|\bimport\.meta\.dirname\b/);
  });
  it('imports no other component', () => {
    for (const file of files) {
      expect(readFileSync(file, 'utf8'), file).not.toMatch(/from\s+['"]\.\.\/(broker|daemon|approver|cli|web)\//);
    }
  });
});
