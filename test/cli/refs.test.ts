import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/errors.js';
import { findTemplateRefs, parseSecretRef, renderTemplate } from '../../src/cli/refs.js';

function expectCliError(run: () => unknown, code: string): CliError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CliError);
  expect((caught as CliError).code).toBe(code);
  return caught as CliError;
}

describe('parseSecretRef', () => {
  it('returns the path of a reference', () => {
    expect(parseSecretRef('sv://prod/db-primary')).toBe('prod/db-primary');
    expect(parseSecretRef('sv://a')).toBe('a');
    expect(parseSecretRef('sv://A.b_c-9/x')).toBe('A.b_c-9/x');
  });

  it('passes other values through', () => {
    expect(parseSecretRef('postgres://user@host/db')).toBeNull();
    expect(parseSecretRef('SV://prod/db')).toBeNull();
    expect(parseSecretRef(' sv://prod/db')).toBeNull();
    expect(parseSecretRef('')).toBeNull();
  });

  const invalid = ['sv://', 'sv:///prod', 'sv://prod/', 'sv://prod//db', 'sv://./db', 'sv://prod/..', 'sv://prod db', 'sv://prod/db?x=1', `sv://${'a'.repeat(257)}`];
  for (const value of invalid) {
    it(`rejects ${value.slice(0, 24)}`, () => {
      expectCliError(() => parseSecretRef(value), 'secret_ref_invalid');
    });
  }

  it('accepts the maximum length', () => {
    const path = 'a'.repeat(256);
    expect(parseSecretRef(`sv://${path}`)).toBe(path);
  });
});

describe('findTemplateRefs', () => {
  it('finds placeholders with and without blanks', () => {
    const template = Buffer.from('a={{sv://one}}\nb={{ sv://two/x }}\nc={{\tsv://three\t}}');
    const refs = findTemplateRefs(template);
    expect(refs.map((ref) => ref.path)).toEqual(['one', 'two/x', 'three']);
    expect(refs.map((ref) => ref.line)).toEqual([1, 2, 3]);
    expect(template.subarray(refs[1]?.start, refs[1]?.end).toString()).toBe('{{ sv://two/x }}');
  });

  it('ignores other braces', () => {
    expect(findTemplateRefs(Buffer.from('{{ name }} {{sv:/x}} { sv://x } sv://y'))).toEqual([]);
  });

  it('rejects an unclosed placeholder', () => {
    const error = expectCliError(() => findTemplateRefs(Buffer.from('ok\n{{ sv://prod/db }')), 'secret_ref_invalid');
    expect(error.message).toContain('line 2');
  });

  it('rejects an invalid path', () => {
    expectCliError(() => findTemplateRefs(Buffer.from('{{ sv://prod/../etc }}')), 'secret_ref_invalid');
    expectCliError(() => findTemplateRefs(Buffer.from('{{ sv:// }}')), 'secret_ref_invalid');
    expectCliError(() => findTemplateRefs(Buffer.from('{{ sv://a b }}')), 'secret_ref_invalid');
  });
});

describe('renderTemplate', () => {
  it('replaces placeholders with values', () => {
    const template = Buffer.from('url=postgres://app:{{ sv://prod/db }}@db\nkey={{sv://api}}\n');
    const values = new Map([
      ['prod/db', Buffer.from('p@ss')],
      ['api', Buffer.from([0x00, 0xff, 0x0a])],
    ]);
    const expected = Buffer.concat([Buffer.from('url=postgres://app:p@ss@db\nkey='), Buffer.from([0x00, 0xff, 0x0a]), Buffer.from('\n')]);
    expect(renderTemplate(template, values).equals(expected)).toBe(true);
  });

  it('keeps templates without references identical', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const template = Buffer.from(bytes);
        fc.pre(!template.toString('latin1').includes('{{'));
        expect(renderTemplate(template, new Map()).equals(template)).toBe(true);
      }),
    );
  });

  it('keeps bytes around placeholders identical', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 50 }), fc.uint8Array({ maxLength: 50 }), fc.uint8Array({ maxLength: 20 }), (before, after, value) => {
        const head = Buffer.from(before);
        const tail = Buffer.from(after);
        fc.pre(!`${head.toString('latin1')}{`.includes('{{') && !`}${tail.toString('latin1')}`.includes('{{'));
        const template = Buffer.concat([head, Buffer.from('{{ sv://p }}'), tail]);
        const rendered = renderTemplate(template, new Map([['p', Buffer.from(value)]]));
        expect(rendered.equals(Buffer.concat([head, Buffer.from(value), tail]))).toBe(true);
      }),
    );
  });

  it('names a path without a value', () => {
    const error = expectCliError(() => renderTemplate(Buffer.from('a\nb={{ sv://missing/one }}'), new Map()), 'secret_ref_unresolved');
    expect(error.message).toBe('line 2: no value for sv://missing/one');
  });
});
