import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvFile, readEnvFile, type EnvEntry } from '../../src/cli/envfile.js';
import { CliError } from '../../src/cli/errors.js';

function values(text: string): Record<string, string> {
  return Object.fromEntries(parseEnvFile(text, '.env').map((entry) => [entry.name, entry.value]));
}

function parseError(text: string): CliError {
  let caught: unknown;
  try {
    parseEnvFile(text, 'app.env');
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CliError);
  expect((caught as CliError).code).toBe('envfile_invalid');
  return caught as CliError;
}

// Each case here is one rule of docs/env-files.md.
describe('parseEnvFile values', () => {
  const cases: [rule: string, text: string, expected: Record<string, string>][] = [
    ['plain assignment', 'KEY=value', { KEY: 'value' }],
    ['export prefix', 'export KEY=value', { KEY: 'value' }],
    ['export with tabs', 'export\t\tKEY=value', { KEY: 'value' }],
    ['variable named export', 'export=1', { export: '1' }],
    ['exported name starting with export', 'exported=1', { exported: '1' }],
    ['comment line', '# a comment\nKEY=value', { KEY: 'value' }],
    ['indented comment line', '   # a comment\nKEY=value', { KEY: 'value' }],
    ['hash inside unquoted value', 'P=p@ss#word', { P: 'p@ss#word' }],
    ['inline comment after blank', 'K=value # note', { K: 'value' }],
    ['inline comment after tab', 'K=value\t# note', { K: 'value' }],
    ['hash right after equals', 'K=#value', { K: '#value' }],
    ['only a comment after equals', 'K= # note', { K: '' }],
    ['empty value', 'K=', { K: '' }],
    ['blanks around equals', 'K = value ', { K: 'value' }],
    ['blanks inside unquoted value', 'K=two words', { K: 'two words' }],
    ['indented assignment', '  K=value', { K: 'value' }],
    ['single quotes are literal', "K='a\\n $HOME \"x\" # not a comment'", { K: 'a\\n $HOME "x" # not a comment' }],
    ['single quotes keep blanks', "K='  padded  '", { K: '  padded  ' }],
    ['comment after single quotes', "K='v' # note", { K: 'v' }],
    ['double-quote escapes', 'K="a\\nb\\rc\\td\\"e\\\\f\\$g\\`h"', { K: 'a\nb\rc\td"e\\f$g`h' }],
    ['other backslashes stay', 'K="C:\\Users\\x \\q"', { K: 'C:\\Users\\x \\q' }],
    ['escapes only in double quotes', 'K=a\\nb', { K: 'a\\nb' }],
    ['comment after double quotes', 'K="v" # note', { K: 'v' }],
    ['hash inside double quotes', 'K="a #b"', { K: 'a #b' }],
    ['multi-line single quotes', "K='line1\nline2'\nNEXT=1", { K: 'line1\nline2', NEXT: '1' }],
    ['multi-line double quotes', 'K="line1\nline2\\tx"\nNEXT=1', { K: 'line1\nline2\tx', NEXT: '1' }],
    ['CRLF line endings', 'A=1\r\nB="x\r\ny"\r\nC=3\r\n', { A: '1', B: 'x\ny', C: '3' }],
    ['BOM before the first key', '\uFEFFFIRST=1\nSECOND=2', { FIRST: '1', SECOND: '2' }],
    ['blank lines', '\n\nA=1\n   \n\t\nB=2\n\n', { A: '1', B: '2' }],
    ['no expansion unquoted', 'K=$HOME/${USER}', { K: '$HOME/${USER}' }],
    ['no expansion double-quoted', 'K="$HOME ${USER} $(id)"', { K: '$HOME ${USER} $(id)' }],
    ['quotes inside unquoted value', `K=it's "fine"`, { K: `it's "fine"` }],
    ['equals inside value', 'K=a=b==', { K: 'a=b==' }],
    ['unicode value', 'K=héllo ✓', { K: 'héllo ✓' }],
    ['no trailing newline', 'K=v', { K: 'v' }],
    ['underscore name', '_PRIVATE_1=x', { _PRIVATE_1: 'x' }],
  ];

  for (const [rule, text, expected] of cases) {
    it(rule, () => {
      expect(values(text)).toEqual(expected);
    });
  }

  it('keeps order and line numbers', () => {
    const text = '# header\nB=2\n\nA="multi\nline"\nexport C=3\n';
    const expected: EnvEntry[] = [
      { name: 'B', value: '2', line: 2 },
      { name: 'A', value: 'multi\nline', line: 4 },
      { name: 'C', value: '3', line: 6 },
    ];
    expect(parseEnvFile(text, '.env')).toEqual(expected);
  });

  it('returns nothing for an empty file', () => {
    expect(parseEnvFile('', '.env')).toEqual([]);
    expect(parseEnvFile('\uFEFF', '.env')).toEqual([]);
  });
});

describe('parseEnvFile errors', () => {
  const cases: [rule: string, text: string, line: number][] = [
    ['line without equals', 'A=1\nJUSTTEXT\n', 2],
    ['name starting with a digit', '1A=x', 1],
    ['name with a dash', 'MY-KEY=x', 1],
    ['export without a name', 'export =x', 1],
    ['unclosed single quote', "A=1\nB='open\nmore\n", 2],
    ['unclosed double quote', 'A="open\\"\n', 1],
    ['text after closing quote', 'A="x"y', 1],
    ['hash glued to closing quote', "A='x'#c", 1],
    ['duplicate name', 'A=1\nB=2\nA=3', 3],
    ['NUL in value', 'A=x\0y', 1],
    ['error after multi-line value', 'A="1\n2"\nBAD LINE', 3],
  ];

  for (const [rule, text, line] of cases) {
    it(rule, () => {
      expect(parseError(text).message.startsWith(`app.env:${line}: `)).toBe(true);
    });
  }

  it('never quotes a value', () => {
    const secret = 'hunter2-secret';
    const messages = [
      parseError(secret).message,
      parseError(`A="${secret}"trailing`).message,
      parseError(`A='${secret}`).message,
      parseError(`A=${secret}\0`).message,
      parseError(`A=${secret}\nA=${secret}`).message,
    ];
    for (const message of messages) expect(message).not.toContain('hunter2');
  });

  it('names the duplicated variable', () => {
    expect(parseError('A=1\nA=2').message).toBe('app.env:2: A is defined twice (first on line 1)');
  });
});

describe('readEnvFile', () => {
  let directory: string;

  beforeAll(() => {
    directory = mkdtempSync(join(tmpdir(), 'sv-env-'));
  });

  afterAll(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  it('strips a BOM from bytes', async () => {
    const file = join(directory, 'bom.env');
    writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('FIRST=1\r\n')]));
    expect(await readEnvFile(file)).toEqual([{ name: 'FIRST', value: '1', line: 1 }]);
  });

  it('rejects invalid UTF-8', async () => {
    const file = join(directory, 'latin1.env');
    writeFileSync(file, Buffer.from([0x41, 0x3d, 0xe9, 0x0a]));
    await expect(readEnvFile(file)).rejects.toMatchObject({ code: 'envfile_invalid', message: `${file}: not valid UTF-8` });
  });

  it('reports a missing file', async () => {
    await expect(readEnvFile(join(directory, 'missing.env'))).rejects.toMatchObject({ code: 'envfile_unreadable' });
  });
});
