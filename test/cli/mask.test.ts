import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MASK_REPLACEMENT, maskPatterns, MaskStream, MIN_MASK_LENGTH } from '../../src/cli/mask.js';

/** Writes `chunks` into a MaskStream one by one and returns everything it emitted. */
async function mask(secrets: (string | Buffer)[], chunks: (string | Buffer)[]): Promise<Buffer> {
  const stream = new MaskStream(secrets.map((secret) => Buffer.from(secret)));
  const output: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => output.push(chunk));
  const ended = new Promise<void>((resolve) => stream.on('end', resolve));
  for (const chunk of chunks) stream.write(Buffer.from(chunk));
  stream.end();
  await ended;
  return Buffer.concat(output);
}

async function maskText(secrets: string[], chunks: string[]): Promise<string> {
  return (await mask(secrets, chunks)).toString();
}

describe('MaskStream', () => {
  it('masks a value', async () => {
    expect(await maskText(['hunter2'], ['password is hunter2.\n'])).toBe('password is ***.\n');
  });

  it('masks every occurrence', async () => {
    expect(await maskText(['abc'], ['abc abc abcabc'])).toBe('*** *** ***');
  });

  it('masks a value split across writes', async () => {
    expect(await maskText(['hunter2'], ['pass: hun', 'te', 'r2 done'])).toBe('pass: *** done');
  });

  it('masks a value split into single bytes', async () => {
    const text = 'x=supersecret;';
    const bytes = Array.from(Buffer.from(text), (byte) => Buffer.from([byte]));
    expect((await mask(['supersecret'], bytes)).toString()).toBe('x=***;');
  });

  it('releases a partial match at the end', async () => {
    expect(await maskText(['hunter2'], ['ends with hunt'])).toBe('ends with hunt');
  });

  it('releases bytes that cannot start a value', async () => {
    const stream = new MaskStream([Buffer.from('hunter2')]);
    const output: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => output.push(chunk));
    stream.write(Buffer.from('Password: '));
    await new Promise((resolve) => setImmediate(resolve));
    expect(Buffer.concat(output).toString()).toBe('Password: ');

    stream.write(Buffer.from('xhu'));
    await new Promise((resolve) => setImmediate(resolve));
    // "hu" may be the start of hunter2, so it waits for the next write.
    expect(Buffer.concat(output).toString()).toBe('Password: x');
    stream.end();
  });

  it('masks each line of a multi-line value', async () => {
    const key = '-----BEGIN KEY-----\nMIIEvQIBADANBg\r\nkqhkiG9w0BAQEF\n-----END KEY-----\n';
    expect(await maskText([key], ['leaked line: kqhkiG9w0BAQEF\n'])).toBe('leaked line: ***\n');
    expect(await maskText([key], ['MIIEvQIBADANBg\r\n'])).toBe('***\r\n');
    expect(await maskText([key], [`whole: ${key}end`])).toBe('whole: ***end');
  });

  it('prefers the longest of two values', async () => {
    expect(await maskText(['token', 'token-extended'], ['a token-extended b token c'])).toBe('a *** b *** c');
    expect(await maskText(['token-extended', 'token'], ['token-ext'])).toBe('***-ext');
  });

  it('merges overlapping values into one run', async () => {
    expect(await maskText(['abcdef', 'defghi'], ['xabcdefghiy'])).toBe('x***y');
    expect(await maskText(['abc', 'xyz'], ['abcxyz'])).toBe('***');
  });

  it('passes output without secrets unchanged', async () => {
    expect(await maskText(['hunter2'], ['line one\n', 'line two\n'])).toBe('line one\nline two\n');
    expect(await maskText([], ['anything'])).toBe('anything');
  });

  it('works on bytes that are not UTF-8', async () => {
    const secret = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
    const input = Buffer.from([0x41, 0xff, 0xfe, 0x00, 0x80, 0xc3]);
    const output = await mask([secret], [input.subarray(0, 3), input.subarray(3)]);
    expect(output.equals(Buffer.concat([Buffer.from('A'), MASK_REPLACEMENT, Buffer.from([0xc3])]))).toBe(true);
  });

  it(`ignores values shorter than ${MIN_MASK_LENGTH} bytes`, async () => {
    expect(await maskText(['ab', 'a'], ['a b ab abc'])).toBe('a b ab abc');
    expect(await maskText(['abc'], ['a b ab abc'])).toBe('a b ab ***');
  });

  it('ignores short and blank lines of a value', async () => {
    const value = 'first-line\nxy\n    \n\tlast-line';
    expect(maskPatterns([Buffer.from(value)]).map((pattern) => pattern.toString())).toEqual([value, 'first-line', '\tlast-line']);
    expect(await maskText([value], ['xy    ok'])).toBe('xy    ok');
  });

  it('ignores values made of whitespace', async () => {
    expect(await maskText(['    ', '\n\n\n'], ['    indented\n\n\n'])).toBe('    indented\n\n\n');
  });
});

/** Secrets for property tests: no '*', so the replacement cannot rebuild one. */
const secretArbitrary = fc.stringMatching(/^[abc\n-]{1,12}$/).map((text) => Buffer.from(text));
const textArbitrary = fc.stringMatching(/^[abcx\n -]{0,30}$/).map((text) => Buffer.from(text));

describe('MaskStream properties', () => {
  it('never emits a maskable value', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(secretArbitrary, { minLength: 1, maxLength: 4 }), fc.array(fc.oneof(textArbitrary, secretArbitrary), { maxLength: 8 }), fc.array(fc.nat(40), { maxLength: 6 }), async (secrets, pieces, cuts) => {
        const input = Buffer.concat(pieces);
        const output = await mask(secrets, splitAt(input, cuts));
        for (const pattern of maskPatterns(secrets)) {
          expect(output.includes(pattern)).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('does not depend on write boundaries', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(secretArbitrary, { minLength: 1, maxLength: 4 }), fc.array(fc.oneof(textArbitrary, secretArbitrary), { maxLength: 8 }), fc.array(fc.nat(40), { maxLength: 6 }), async (secrets, pieces, cuts) => {
        const input = Buffer.concat(pieces);
        const whole = await mask(secrets, [input]);
        const split = await mask(secrets, splitAt(input, cuts));
        expect(split.equals(whole)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('leaves output without secrets unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(secretArbitrary, { maxLength: 4 }), fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(200), { maxLength: 6 }), async (secrets, bytes, cuts) => {
        const input = Buffer.from(bytes);
        fc.pre(maskPatterns(secrets).every((pattern) => !input.includes(pattern)));
        const output = await mask(secrets, splitAt(input, cuts));
        expect(output.equals(input)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

/** Splits `input` at the given offsets (clamped and sorted). */
function splitAt(input: Buffer, cuts: number[]): Buffer[] {
  const offsets = [...new Set(cuts.map((cut) => Math.min(cut, input.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const offset of offsets) {
    chunks.push(input.subarray(start, offset));
    start = offset;
  }
  chunks.push(input.subarray(start));
  return chunks.filter((chunk) => chunk.length > 0);
}
