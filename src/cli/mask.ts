import { Transform, type TransformCallback } from 'node:stream';

/**
 * Masking of secret values in a child's output, on bytes.
 *
 * Patterns: each secret value, and each line of a multi-line value (split at
 * LF, with a trailing CR removed). A pattern shorter than MIN_MASK_LENGTH
 * bytes, or made only of whitespace, is not masked, because masking it would
 * garble ordinary output while hiding next to nothing.
 *
 * Every byte covered by any occurrence of any pattern is masked, so of
 * overlapping matches (or one value that is a prefix of another) the longest
 * cover wins. Each run of masked bytes becomes one MASK_REPLACEMENT. All other
 * bytes pass through unchanged and in order.
 *
 * A chunk's tail is held back only while it could still be the start of a
 * pattern (so at most the longest pattern minus one byte), and is released
 * by the next write or at the end.
 */

export const MASK_REPLACEMENT = Buffer.from('***');
export const MIN_MASK_LENGTH = 3;

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);
const LF = 0x0a;
const CR = 0x0d;

/**
 * Returns the byte patterns to mask for `secrets`, longest first. The patterns
 * are views into the given buffers, so wiping a secret also wipes them.
 */
export function maskPatterns(secrets: readonly Buffer[]): Buffer[] {
  const patterns: Buffer[] = [];
  const add = (pattern: Buffer) => {
    if (pattern.length < MIN_MASK_LENGTH || pattern.every((byte) => WHITESPACE.has(byte))) return;
    // Buffer.equals, not a string key, so no copy of a secret ends up in an unwipeable string.
    if (!patterns.some((known) => known.equals(pattern))) patterns.push(pattern);
  };

  for (const secret of secrets) {
    add(secret);
    if (secret.includes(LF)) splitLines(secret).forEach(add);
  }
  return patterns.sort((a, b) => b.length - a.length);
}

function splitLines(value: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let end = value.indexOf(LF); end >= 0; end = value.indexOf(LF, start)) {
    lines.push(withoutTrailingCr(value.subarray(start, end)));
    start = end + 1;
  }
  lines.push(withoutTrailingCr(value.subarray(start)));
  return lines;
}

function withoutTrailingCr(line: Buffer): Buffer {
  return line.at(-1) === CR ? line.subarray(0, -1) : line;
}

/** A Transform that masks secret values in the bytes written to it. Keeps references to `secrets` until it ends. */
export class MaskStream extends Transform {
  /** Patterns grouped by first byte, each group longest first. */
  readonly #byFirstByte = new Map<number, Buffer[]>();
  /** Bytes not yet decided, because a pattern might continue in the next chunk. */
  #pending: Buffer = Buffer.alloc(0);
  /** End (relative to #pending) of the furthest pattern occurrence seen so far. */
  #coverEnd = 0;
  /** Whether the last byte emitted was masked, so the run continues without a second replacement. */
  #inMaskedRun = false;

  constructor(secrets: readonly Buffer[]) {
    super();
    for (const pattern of maskPatterns(secrets)) {
      const first = pattern[0] ?? 0;
      const group = this.#byFirstByte.get(first) ?? [];
      group.push(pattern);
      this.#byFirstByte.set(first, group);
    }
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.#process(this.#pending.length === 0 ? bytes : Buffer.concat([this.#pending, bytes]), false);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.#process(this.#pending, true);
    callback();
  }

  /** Emits every byte of `input` whose masking is decided; keeps the rest in #pending. */
  #process(input: Buffer, final: boolean): void {
    const output: Buffer[] = [];
    let plainStart = 0;
    let pos = 0;

    for (; pos < input.length; pos++) {
      const matched = this.#longestMatchAt(input, pos, final);
      if (matched === undefined) break;
      this.#coverEnd = Math.max(this.#coverEnd, pos + matched);

      if (pos >= this.#coverEnd) {
        this.#inMaskedRun = false;
        continue;
      }
      if (!this.#inMaskedRun) {
        output.push(input.subarray(plainStart, pos), MASK_REPLACEMENT);
        this.#inMaskedRun = true;
      }
      plainStart = pos + 1;
    }

    output.push(input.subarray(plainStart, pos));
    this.#pending = Buffer.from(input.subarray(pos));
    this.#coverEnd = Math.max(0, this.#coverEnd - pos);

    const bytes = Buffer.concat(output);
    if (bytes.length > 0) this.push(bytes);
  }

  /**
   * Returns the length of the longest pattern at `pos` (0 for none), or
   * undefined when a longer pattern could still match once more bytes arrive.
   */
  #longestMatchAt(input: Buffer, pos: number, final: boolean): number | undefined {
    const candidates = this.#byFirstByte.get(input[pos] ?? -1);
    if (candidates === undefined) return 0;

    const available = input.length - pos;
    for (const pattern of candidates) {
      if (pattern.length <= available) {
        if (input.compare(pattern, 0, pattern.length, pos, pos + pattern.length) === 0) return pattern.length;
      } else if (!final && input.compare(pattern, 0, available, pos, input.length) === 0) {
        return undefined;
      }
    }
    return 0;
  }
}
