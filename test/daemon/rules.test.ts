import { chmodSync, chownSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonError } from '../../src/daemon/errors.js';
import { loadRulesFile, LocalRules, matchPathGlob, type RuleSubject } from '../../src/daemon/rules.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'B'.repeat(64);

const users = new Map([
  ['alice', 1001],
  ['bob', 1002],
]);
const lookupUid = (name: string) => users.get(name) ?? null;

function caller(overrides: Partial<RuleSubject> = {}): RuleSubject {
  return { uid: 1001, gid: 1001, groups: [1001, 27], pid: 4321, exe: '/usr/bin/agent', ...overrides };
}

function parse(rules: unknown[]): LocalRules {
  return LocalRules.parse({ version: 1, rules }, 'rules.json', { lookupUid });
}

function expectCode(run: () => unknown, code: string): DaemonError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DaemonError);
  expect((caught as DaemonError).code).toBe(code);
  return caught as DaemonError;
}

describe('LocalRules.authorize', () => {
  it('owner-only default allows the owner', () => {
    const rules = LocalRules.ownerOnly(1001);
    expect(rules.authorize(caller(), 'prod/db')).toEqual({ paths: ['**'], uids: [1001] });
    expect(rules.authorize(caller({ exe: '/anything/else' }), 'a')).toBeDefined();
  });

  it('owner-only default rejects other users', () => {
    const error = expectCode(() => LocalRules.ownerOnly(1001).authorize(caller({ uid: 1002 }), 'prod/db'), 'caller_not_allowed');
    expect(error.message).toContain('uid 1002');
    expect(error.message).toContain('prod/db');
  });

  it('matches paths by glob', () => {
    const rules = parse([{ paths: ['prod/*', 'dev/**'], uids: [1001] }]);
    expect(rules.authorize(caller(), 'prod/db')).toBeDefined();
    expect(rules.authorize(caller(), 'dev/a/b/c')).toBeDefined();
    expectCode(() => rules.authorize(caller(), 'prod/db/replica'), 'caller_not_allowed');
    expectCode(() => rules.authorize(caller(), 'staging/db'), 'caller_not_allowed');
  });

  it('requires every listed field', () => {
    const rules = parse([{ paths: ['**'], uids: [1001], exes: ['/usr/bin/agent'] }]);
    expect(rules.authorize(caller(), 'x')).toBeDefined();
    expectCode(() => rules.authorize(caller({ exe: '/usr/bin/other' }), 'x'), 'caller_not_allowed');
    expectCode(() => rules.authorize(caller({ uid: 1002 }), 'x'), 'caller_not_allowed');
  });

  it('combines users with uids', () => {
    const rules = parse([{ paths: ['**'], uids: [1003], users: ['bob'] }]);
    expect(rules.authorize(caller({ uid: 1002 }), 'x')).toBeDefined();
    expect(rules.authorize(caller({ uid: 1003 }), 'x')).toBeDefined();
    expectCode(() => rules.authorize(caller({ uid: 1001 }), 'x'), 'caller_not_allowed');
  });

  it('matches primary and supplementary groups', () => {
    const rules = parse([{ paths: ['**'], gids: [27] }]);
    expect(rules.authorize(caller({ gid: 27, groups: [] }), 'x')).toBeDefined();
    expect(rules.authorize(caller({ gid: 1001, groups: [27] }), 'x')).toBeDefined();
    expectCode(() => rules.authorize(caller({ gid: 1001, groups: [1001] }), 'x'), 'caller_not_allowed');
  });

  it('matches executable hashes case-insensitively', () => {
    const rules = parse([{ paths: ['**'], uids: [1001], exeSha256: [SHA_A, SHA_B] }]);
    expect(rules.requiresExeHash).toBe(true);
    expect(rules.authorize(caller({ exeSha256: SHA_A }), 'x')).toBeDefined();
    expect(rules.authorize(caller({ exeSha256: SHA_B.toLowerCase() }), 'x')).toBeDefined();
    expectCode(() => rules.authorize(caller({ exeSha256: 'c'.repeat(64) }), 'x'), 'caller_not_allowed');
  });

  it('never matches a hash rule without a hash', () => {
    const rules = parse([{ paths: ['**'], uids: [1001], exeSha256: [SHA_A] }]);
    expectCode(() => rules.authorize(caller(), 'x'), 'caller_not_allowed');
  });

  it('returns the first matching rule', () => {
    const rules = parse([
      { paths: ['prod/**'], uids: [1001], exes: ['/usr/bin/deploy'] },
      { paths: ['prod/db'], uids: [1001] },
      { paths: ['**'], uids: [1001] },
    ]);
    expect(rules.authorize(caller({ exe: '/usr/bin/deploy' }), 'prod/db').exes).toEqual(['/usr/bin/deploy']);
    expect(rules.authorize(caller(), 'prod/db').paths).toEqual(['prod/db']);
    expect(rules.authorize(caller(), 'dev/x').paths).toEqual(['**']);
    expect(rules.requiresExeHash).toBe(false);
  });

  it('rejects everyone with an empty rule list', () => {
    const rules = parse([]);
    expectCode(() => rules.authorize(caller(), 'x'), 'caller_not_allowed');
  });
});

describe('LocalRules.parse', () => {
  const cases: { name: string; document: unknown; field: string }[] = [
    { name: 'not an object', document: [], field: '(top level)' },
    { name: 'unknown top-level field', document: { version: 1, rules: [], extra: true }, field: '(top level)' },
    { name: 'missing version', document: { rules: [] }, field: 'version' },
    { name: 'wrong version', document: { version: 2, rules: [] }, field: 'version' },
    { name: 'rules not an array', document: { version: 1, rules: {} }, field: 'rules' },
    { name: 'rule not an object', document: { version: 1, rules: ['x'] }, field: 'rules[0]' },
    { name: 'unknown rule field', document: { version: 1, rules: [{ paths: ['a'], uids: [1], exe: '/bin/sh' }] }, field: 'rules[0]' },
    { name: 'missing paths', document: { version: 1, rules: [{ uids: [1] }] }, field: 'rules[0].paths' },
    { name: 'empty paths', document: { version: 1, rules: [{ paths: [], uids: [1] }] }, field: 'rules[0].paths' },
    { name: 'empty path segment', document: { version: 1, rules: [{ paths: ['a', 'a//b'], uids: [1] }] }, field: 'rules[0].paths[1]' },
    { name: 'dot-dot segment', document: { version: 1, rules: [{ paths: ['a/../b'], uids: [1] }] }, field: 'rules[0].paths[0]' },
    { name: 'partial double star', document: { version: 1, rules: [{ paths: ['a**'], uids: [1] }] }, field: 'rules[0].paths[0]' },
    { name: 'regex characters', document: { version: 1, rules: [{ paths: ['a(b)|c'], uids: [1] }] }, field: 'rules[0].paths[0]' },
    { name: 'no identity field', document: { version: 1, rules: [{ paths: ['a'], exes: ['/bin/sh'] }] }, field: 'rules[0]' },
    { name: 'negative uid', document: { version: 1, rules: [{ paths: ['a'], uids: [-1] }] }, field: 'rules[0].uids[0]' },
    { name: 'fractional gid', document: { version: 1, rules: [{ paths: ['a'], gids: [1.5] }] }, field: 'rules[0].gids[0]' },
    { name: 'uid as string', document: { version: 1, rules: [{ paths: ['a'], uids: ['1000'] }] }, field: 'rules[0].uids[0]' },
    { name: 'uid -1 as unsigned', document: { version: 1, rules: [{ paths: ['a'], uids: [4294967295] }] }, field: 'rules[0].uids[0]' },
    { name: 'empty uids', document: { version: 1, rules: [{ paths: ['a'], uids: [] }] }, field: 'rules[0].uids' },
    { name: 'unknown user', document: { version: 1, rules: [{ paths: ['a'], users: ['alice', 'mallory'] }] }, field: 'rules[0].users[1]' },
    { name: 'relative exe', document: { version: 1, rules: [{ paths: ['a'], uids: [1], exes: ['bin/node'] }] }, field: 'rules[0].exes[0]' },
    { name: 'unnormalized exe', document: { version: 1, rules: [{ paths: ['a'], uids: [1], exes: ['/usr/bin/../bin/node'] }] }, field: 'rules[0].exes[0]' },
    { name: 'short hash', document: { version: 1, rules: [{ paths: ['a'], uids: [1], exeSha256: ['abc'] }] }, field: 'rules[0].exeSha256[0]' },
    { name: 'second rule bad', document: { version: 1, rules: [{ paths: ['a'], uids: [1] }, { paths: ['b'], gids: 'x' }] }, field: 'rules[1].gids' },
  ];

  for (const { name, document, field } of cases) {
    it(`rejects ${name}`, () => {
      const error = expectCode(() => LocalRules.parse(document, 'rules.json', { lookupUid }), 'rules_invalid');
      expect(error.message.startsWith(`rules.json: ${field}: `)).toBe(true);
    });
  }

  it('accepts every field', () => {
    const rules = parse([{ paths: ['a/*'], uids: [1], gids: [2], users: ['alice'], exes: ['/bin/sh'], exeSha256: [SHA_A] }]);
    expect(rules.requiresExeHash).toBe(true);
  });
});

describe('loadRulesFile', () => {
  let directory: string;

  beforeAll(() => {
    directory = mkdtempSync(join(tmpdir(), 'sv-rules-'));
  });

  afterAll(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  function writeRules(name: string, text: string, mode = 0o600): string {
    const file = join(directory, name);
    writeFileSync(file, text);
    chmodSync(file, mode);
    return file;
  }

  it('loads a valid file', async () => {
    const file = writeRules('valid.json', JSON.stringify({ version: 1, rules: [{ paths: ['**'], uids: [1001] }] }));
    const rules = await loadRulesFile(file);
    expect(rules.source).toBe(file);
    expect(rules.authorize(caller(), 'x')).toBeDefined();
  });

  it('defaults to owner-only when missing', async () => {
    const rules = await loadRulesFile(join(directory, 'absent.json'), { missingOk: true });
    const uid = process.getuid?.() ?? -1;
    expect(rules.authorize(caller({ uid }), 'any/path')).toBeDefined();
    expectCode(() => rules.authorize(caller({ uid: uid + 1 }), 'any/path'), 'caller_not_allowed');
  });

  it('rejects a missing file by default', async () => {
    await expect(loadRulesFile(join(directory, 'absent.json'))).rejects.toMatchObject({ code: 'rules_invalid' });
  });

  it('rejects invalid JSON', async () => {
    const file = writeRules('broken.json', '{"version": 1, "rules": [');
    await expect(loadRulesFile(file)).rejects.toMatchObject({ code: 'rules_invalid', message: expect.stringContaining('invalid JSON') as unknown });
  });

  it('rejects a group-writable file', async () => {
    const file = writeRules('writable.json', JSON.stringify({ version: 1, rules: [] }), 0o620);
    await expect(loadRulesFile(file)).rejects.toMatchObject({ code: 'rules_invalid', message: expect.stringContaining('chmod go-w') as unknown });
  });

  it.skipIf(process.getuid?.() !== 0)('rejects a file owned by another user', async () => {
    const file = writeRules('foreign.json', JSON.stringify({ version: 1, rules: [] }));
    chownSync(file, 4242, 4242);
    await expect(loadRulesFile(file)).rejects.toMatchObject({ code: 'rules_invalid', message: expect.stringContaining('owned by uid 4242') as unknown });
  });

  it('resolves a symlinked executable', async () => {
    const target = writeRules('real-agent', '#!/bin/sh\n', 0o755);
    const link = join(directory, 'agent-link');
    symlinkSync(target, link);
    const file = writeRules('exes.json', JSON.stringify({ version: 1, rules: [{ paths: ['**'], uids: [1001], exes: [link] }] }));

    const rules = await loadRulesFile(file);

    expect(rules.authorize(caller({ exe: target }), 'x')).toBeDefined();
    expect(rules.authorize(caller({ exe: link }), 'x')).toBeDefined();
  });
});

describe('matchPathGlob', () => {
  const table: [glob: string, path: string, expected: boolean][] = [
    ['prod/db', 'prod/db', true],
    ['prod/db', 'prod/db2', false],
    ['prod/*', 'prod/db', true],
    ['prod/*', 'prod/db/x', false],
    ['prod/db-*', 'prod/db-primary', true],
    ['prod/db-*', 'prod/db-', true],
    ['prod/*-primary', 'prod/db-primary', true],
    ['prod/*a*b*', 'prod/xaybz', true],
    ['prod/*a*b*', 'prod/xbya', false],
    ['prod/**', 'prod/a/b/c', true],
    ['prod/**', 'prod', true],
    ['prod/**', 'production/a', false],
    ['**/db', 'db', true],
    ['**/db', 'a/b/db', true],
    ['a/**/z', 'a/z', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a/**/z', 'a/b/c/y', false],
    ['**', 'anything/at/all', true],
    ['a.b', 'axb', false],
    ['a.b', 'a.b', true],
    ['*', 'a/b', false],
  ];

  for (const [glob, path, expected] of table) {
    it(`${glob} vs ${path} is ${expected}`, () => {
      expect(matchPathGlob(glob, path)).toBe(expected);
    });
  }

  it('agrees with an escaped regular expression', () => {
    const segment = fc.stringMatching(/^[ab.*-]{1,4}$/).filter((s) => s !== '.' && s !== '..' && !s.includes('**'));
    const globSegment = fc.oneof(segment, fc.constant('**'));
    const pathSegment = fc.stringMatching(/^[ab.-]{1,4}$/).filter((s) => s !== '.' && s !== '..');
    fc.assert(
      fc.property(fc.array(globSegment, { minLength: 1, maxLength: 4 }), fc.array(pathSegment, { minLength: 1, maxLength: 5 }), (globParts, pathParts) => {
        const glob = globParts.join('/');
        const path = pathParts.join('/');
        expect(matchPathGlob(glob, path)).toBe(referenceMatch(globParts, path));
      }),
      { numRuns: 2000 },
    );
  });
});

/**
 * Matches `path` with a regular-expression model of the glob rules, to
 * cross-check the matcher. The model matches "/" + path: each segment is "/"
 * and its text, and "**" is zero or more whole segments.
 */
function referenceMatch(globParts: string[], path: string): boolean {
  const source = globParts.map((part) => (part === '**' ? '(?:/[^/]+)*' : `/${part.split('*').map(escapeRegExp).join('[^/]*')}`)).join('');
  return new RegExp(`^${source}$`).test(`/${path}`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
