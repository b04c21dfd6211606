import { describe, expect, it } from 'vitest';
import { checkPathGlob, checkSecretPath, matchPathGlob } from '../../src/protocol/index.js';

describe('paths', () => {
  it('accepts and rejects secret paths', () => {
    for (const good of ['a', 'prod/db/url', 'a.b/c-d/E_9', 'x/'.repeat(127) + 'y']) expect(checkSecretPath(good)).toBe(good);
    for (const bad of ['', '/a', 'a/', 'a//b', '.', '..', 'a/./b', 'a/../b', 'a b', 'a*', 'é', 'x'.repeat(257), 'a\\b']) {
      expect(() => checkSecretPath(bad), bad).toThrow(expect.objectContaining({ code: 'invalid_path' }) as Error);
    }
  });

  it('accepts and rejects globs', () => {
    for (const good of ['**', 'prod/*', 'prod/**/token', 'db-*-url', '*.*']) expect(checkPathGlob(good)).toBe(good);
    for (const bad of ['a/**b', '***', 'a/../*', 'a/(x)', 'a/[b]', 'a/?', '']) {
      expect(() => checkPathGlob(bad), bad).toThrow(expect.objectContaining({ code: 'invalid_path' }) as Error);
    }
  });

  const cases: [string, string, boolean][] = [
    ['prod/db/url', 'prod/db/url', true],
    ['prod/db/url', 'prod/db/urls', false],
    ['prod/*', 'prod/db', true],
    ['prod/*', 'prod/db/url', false],
    ['prod/*', 'prod', false],
    ['prod/**', 'prod', true],
    ['prod/**', 'prod/a/b/c', true],
    ['**', 'anything/at/all', true],
    ['prod/**/token', 'prod/token', true],
    ['prod/**/token', 'prod/a/b/token', true],
    ['prod/**/token', 'prod/a/b/token2', false],
    ['db-*-url', 'db-main-url', true],
    ['db-*-url', 'db--url', true],
    ['db-*-url', 'db-url', false],
    ['*.env', '.env', true],
    ['a.b', 'aXb', false],
    ['**/x/**', 'x', true],
    ['**/x/**', 'a/b/x/c', true],
    ['**/x/**', 'a/b/y/c', false],
    ['*', 'a/b', false],
    ['prod/*', '../etc', false],
  ];
  it.each(cases)('glob %s against %s', (glob, path, expected) => {
    expect(matchPathGlob(glob, path)).toBe(expected);
  });

  it('stays fast on many stars', () => {
    const glob = Array.from({ length: 40 }, () => '**').join('/') + '/z';
    const path = Array.from({ length: 100 }, () => 'a').join('/');
    expect(matchPathGlob(glob, path)).toBe(false);
    expect(matchPathGlob('*a*a*a*a*a*a*a*a*b', 'a'.repeat(200))).toBe(false);
  });
});
