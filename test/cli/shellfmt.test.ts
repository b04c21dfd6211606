import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../src/cli/envfile.js';
import { CliError } from '../../src/cli/errors.js';
import { formatEnv, formatJson, formatSecret, formatSh } from '../../src/cli/shellfmt.js';

type Shell = 'bash' | 'sh';
const SHELLS: Shell[] = ['bash', 'sh'];
const LOCALES = ['C', 'C.UTF-8'];

let workDirectory: string;

beforeAll(() => {
  workDirectory = mkdtempSync(join(tmpdir(), 'sv-shellfmt-'));
});

afterAll(() => {
  rmSync(workDirectory, { recursive: true, force: true });
});

/**
 * Evaluates `script` in a real shell, then prints $NAME with printf %s and
 * returns the bytes. HOME points at an empty directory so no startup file runs.
 */
function evalAndPrint(shell: Shell, script: Buffer, name: string, locale = 'C.UTF-8'): Buffer {
  const file = join(workDirectory, 'script.sh');
  writeFileSync(file, script);
  const result = spawnSync(shell, ['-c', `eval "$(cat "$1")"; printf %s "$${name}"`, shell, file], {
    cwd: workDirectory,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: workDirectory, LC_ALL: locale },
  });
  expect(result.stderr.toString()).toBe('');
  expect(result.status).toBe(0);
  return result.stdout;
}

const awkwardValues: [label: string, value: string][] = [
  ['single quotes', "it's 'quoted'"],
  ['double quotes', 'say "hi"'],
  ['command substitution', '$(touch pwned-1)'],
  ['backticks', '`touch pwned-2`'],
  ['variables', '$HOME ${PATH} $1 $@ $$'],
  ['backslashes', 'C:\\new\\table \\\\ \\'],
  ['trailing backslash', 'ends with \\'],
  ['newlines', 'line1\nline2\n\n'],
  ['carriage return', 'a\r\nb\r'],
  ['glob characters', '* ? [a-z] ~'],
  ['semicolons and pipes', 'a; touch pwned-3 | cat && echo'],
  ['history expansion', '!! !$ !-1'],
  ['empty', ''],
  ['unicode', 'héllo ✓ 🔑'],
  ['quote escape sequence', "'\\''"],
];

describe('formatEnv and formatSh', () => {
  for (const shell of SHELLS) {
    for (const [label, text] of awkwardValues) {
      it(`${shell} round-trips ${label}`, () => {
        const value = Buffer.from(text);
        expect(evalAndPrint(shell, formatEnv('SECRET', value), 'SECRET').equals(value)).toBe(true);
        expect(evalAndPrint(shell, formatSh('SECRET', value), 'SECRET').equals(value)).toBe(true);
      });
    }
  }

  it('runs nothing from the value', () => {
    for (const marker of ['pwned-1', 'pwned-2', 'pwned-3']) {
      expect(existsSync(join(workDirectory, marker))).toBe(false);
    }
  });

  for (const locale of LOCALES) {
    it(`round-trips non-UTF-8 bytes in ${locale}`, () => {
      const value = Buffer.from([0xff, 0xfe, 0x27, 0x5c, 0x80, 0x22, 0xc3, 0x24, 0x60, 0x0a]);
      for (const shell of SHELLS) {
        expect(evalAndPrint(shell, formatEnv('BYTES', value), 'BYTES', locale).equals(value)).toBe(true);
        expect(evalAndPrint(shell, formatSh('BYTES', value), 'BYTES', locale).equals(value)).toBe(true);
      }
    });
  }

  it('round-trips any bytes through eval', () => {
    const anyBytes = fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes.filter((byte) => byte !== 0)));
    fc.assert(
      fc.property(anyBytes, fc.constantFrom(...SHELLS), (value, shell) => {
        expect(evalAndPrint(shell, formatEnv('V', value), 'V').equals(value)).toBe(true);
        expect(evalAndPrint(shell, formatSh('V', value), 'V').equals(value)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('exports with the sh format', () => {
    const script = formatSh('EXPORTED', Buffer.from('x y'));
    const file = join(workDirectory, 'export.sh');
    writeFileSync(file, script);
    const result = spawnSync('bash', ['-c', `eval "$(cat "$1")"; sh -c 'printf %s "$EXPORTED"'`, 'bash', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: workDirectory },
    });
    expect(result.stdout.toString()).toBe('x y');
  });

  it('produces the documented text', () => {
    expect(formatEnv('A', Buffer.from('x"$`\\y')).toString()).toBe('A="x\\"\\$\\`\\\\y"\n');
    expect(formatSh('A', Buffer.from("it's")).toString()).toBe("export A='it'\\''s'\n");
  });

  it('env output parses back as .env', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((value) => !value.includes('\0') && !value.includes('\r'));
    fc.assert(
      fc.property(text, (value) => {
        const line = formatEnv('K', Buffer.from(value)).toString();
        expect(parseEnvFile(line, 'out.env')).toEqual([{ name: 'K', value, line: 1 }]);
      }),
    );
  });

  it('rejects invalid names', () => {
    for (const name of ['', '1ABC', 'MY-VAR', 'A B', 'A=B', 'ÄB', 'a;rm']) {
      for (const format of [formatEnv, formatSh]) {
        expect(() => format(name, Buffer.from('v'))).toThrow(expect.objectContaining({ code: 'invalid_name' }));
      }
    }
  });

  it('rejects NUL without quoting the value', () => {
    let caught: unknown;
    try {
      formatSh('TOKEN', Buffer.from('hunter2\0x'));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CliError);
    expect((caught as CliError).code).toBe('value_contains_nul');
    expect((caught as CliError).message).toContain('TOKEN');
    expect((caught as CliError).message).not.toContain('hunter2');
    expect(() => formatEnv('TOKEN', Buffer.from([0]))).toThrow(expect.objectContaining({ code: 'value_contains_nul' }));
  });
});

describe('formatJson', () => {
  it('writes UTF-8 values as strings', () => {
    const output = formatJson('prod/db', Buffer.from('pä"ss\n'));
    expect(JSON.parse(output.toString())).toEqual({ name: 'prod/db', value: 'pä"ss\n' });
    expect(output.toString().endsWith('}\n')).toBe(true);
  });

  it('writes other bytes as base64', () => {
    const value = Buffer.from([0xff, 0x00, 0x41]);
    const parsed = JSON.parse(formatJson('bin', value).toString()) as Record<string, unknown>;
    expect(parsed).toEqual({ name: 'bin', valueBase64: value.toString('base64') });
    expect(parsed.value).toBeUndefined();
  });

  it('round-trips any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const value = Buffer.from(bytes);
        const parsed = JSON.parse(formatJson('x', value).toString()) as { value?: string; valueBase64?: string };
        const decoded = parsed.value !== undefined ? Buffer.from(parsed.value, 'utf8') : Buffer.from(parsed.valueBase64 ?? '', 'base64');
        expect(decoded.equals(value)).toBe(true);
      }),
    );
  });
});

describe('formatSecret', () => {
  it('dispatches by format', () => {
    const value = Buffer.from('v');
    expect(formatSecret('env', 'A', value).toString()).toBe('A="v"\n');
    expect(formatSecret('sh', 'A', value).toString()).toBe("export A='v'\n");
    expect(formatSecret('json', 'A', value).toString()).toBe('{"name":"A","value":"v"}\n');
  });
});
