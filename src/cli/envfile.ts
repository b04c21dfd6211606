import { readFile } from 'node:fs/promises';
import { CliError } from './errors.js';

/**
 * A .env file parser. docs/env-files.md states the syntax, and
 * test/cli/envfile.test.ts checks each rule. Values never undergo variable
 * expansion, and error messages name the file, line and variable but never
 * quote a value.
 */

export interface EnvEntry {
  name: string;
  value: string;
  /** 1-based line where the entry starts. */
  line: number;
}

/** Error code of every .env syntax error. */
export const ENV_FILE_INVALID = 'envfile_invalid';

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const DOUBLE_QUOTE_ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  r: '\r',
  t: '\t',
  '"': '"',
  '\\': '\\',
  $: '$',
  '`': '`',
};

/** Reads `file` as strict UTF-8 and parses it. */
export async function readEnvFile(file: string): Promise<EnvEntry[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new CliError('envfile_unreadable', `reading env file ${file} failed: ${(cause as Error).message}`, { cause });
  }
  let text: string;
  try {
    // TextDecoder drops a leading UTF-8 BOM by default.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new CliError(ENV_FILE_INVALID, `${file}: not valid UTF-8`, { cause });
  }
  return parseEnvFile(text, file);
}

/** Parses .env text into entries in file order. Throws CliError('envfile_invalid') naming `fileName` and the line. */
export function parseEnvFile(text: string, fileName: string): EnvEntry[] {
  const parser = new EnvParser(text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n'), fileName);
  return parser.parse();
}

class EnvParser {
  readonly #text: string;
  readonly #file: string;
  #pos = 0;
  #line = 1;

  constructor(text: string, file: string) {
    this.#text = text;
    this.#file = file;
  }

  parse(): EnvEntry[] {
    const entries: EnvEntry[] = [];
    const firstLine = new Map<string, number>();

    while (this.#pos < this.#text.length) {
      this.#skipBlanks();
      const char = this.#peek();
      if (char === '\n') {
        this.#advanceLine();
        continue;
      }
      if (char === undefined) break;
      if (char === '#') {
        this.#skipToLineEnd();
        continue;
      }

      const entry = this.#parseEntry();
      const previous = firstLine.get(entry.name);
      if (previous !== undefined) {
        throw this.#error(entry.line, `${entry.name} is defined twice (first on line ${previous})`);
      }
      firstLine.set(entry.name, entry.line);
      entries.push(entry);
    }
    return entries;
  }

  #parseEntry(): EnvEntry {
    const line = this.#line;
    this.#skipExportKeyword();
    const name = this.#parseName(line);
    this.#skipBlanks();
    if (this.#peek() !== '=') {
      throw this.#error(line, 'expected NAME=value');
    }
    this.#pos++;

    const value = this.#parseValue(name);
    if (value.includes('\0')) {
      throw this.#error(line, `the value of ${name} contains a NUL character, which environment variables cannot hold`);
    }
    return { name, value, line };
  }

  /** Skips `export` followed by blanks; `export=1` stays a variable named export. */
  #skipExportKeyword(): void {
    const after = this.#text[this.#pos + 'export'.length];
    if (this.#text.startsWith('export', this.#pos) && (after === ' ' || after === '\t')) {
      this.#pos += 'export'.length;
      this.#skipBlanks();
    }
  }

  #parseName(line: number): string {
    const start = this.#pos;
    if (!NAME_START.test(this.#peek() ?? '')) {
      throw this.#error(line, 'invalid variable name: use letters, digits and _, not starting with a digit');
    }
    while (NAME_CHAR.test(this.#peek() ?? '')) this.#pos++;
    return this.#text.slice(start, this.#pos);
  }

  #parseValue(name: string): string {
    const afterEquals = this.#pos;
    this.#skipBlanks();
    const quote = this.#peek();
    if (quote === "'") return this.#finishQuoted(name, this.#parseSingleQuoted(name));
    if (quote === '"') return this.#finishQuoted(name, this.#parseDoubleQuoted(name));
    this.#pos = afterEquals;
    return this.#parseUnquoted();
  }

  /** Returns the rest of the line up to an inline comment (blank then '#'), without surrounding blanks. */
  #parseUnquoted(): string {
    const end = this.#lineEnd();
    const raw = this.#text.slice(this.#pos, end);
    this.#pos = end;

    let cut = raw.length;
    for (let i = 1; i < raw.length; i++) {
      if (raw[i] === '#' && isBlank(raw[i - 1])) {
        cut = i;
        break;
      }
    }
    return trimBlanks(raw.slice(0, cut));
  }

  #parseSingleQuoted(name: string): string {
    const openLine = this.#line;
    const close = this.#text.indexOf("'", this.#pos + 1);
    if (close < 0) throw this.#error(openLine, `the single-quoted value of ${name} is not closed`);

    const value = this.#text.slice(this.#pos + 1, close);
    this.#line += countNewlines(value);
    this.#pos = close + 1;
    return value;
  }

  #parseDoubleQuoted(name: string): string {
    const openLine = this.#line;
    let value = '';
    this.#pos++;
    for (;;) {
      const char = this.#peek();
      if (char === undefined) throw this.#error(openLine, `the double-quoted value of ${name} is not closed`);
      this.#pos++;
      if (char === '"') return value;
      if (char === '\n') this.#line++;
      if (char !== '\\') {
        value += char;
        continue;
      }
      const next = this.#peek();
      if (next === undefined) throw this.#error(openLine, `the double-quoted value of ${name} is not closed`);
      const escaped = DOUBLE_QUOTE_ESCAPES[next];
      // Other backslashes stay literal, as in POSIX shell double quotes.
      value += escaped ?? '\\';
      if (escaped !== undefined) this.#pos++;
    }
  }

  /** After a closing quote only blanks may follow, then optionally a blank and a comment. */
  #finishQuoted(name: string, value: string): string {
    const end = this.#lineEnd();
    const rest = this.#text.slice(this.#pos, end);
    this.#pos = end;
    if (trimBlanks(rest) !== '' && !/^[ \t]+#/.test(rest)) {
      throw this.#error(this.#line, `unexpected text after the closing quote of ${name}`);
    }
    return value;
  }

  #peek(): string | undefined {
    return this.#text[this.#pos];
  }

  #skipBlanks(): void {
    while (isBlank(this.#peek())) this.#pos++;
  }

  #skipToLineEnd(): void {
    this.#pos = this.#lineEnd();
  }

  #advanceLine(): void {
    this.#pos++;
    this.#line++;
  }

  #lineEnd(): number {
    const end = this.#text.indexOf('\n', this.#pos);
    return end < 0 ? this.#text.length : end;
  }

  #error(line: number, problem: string): CliError {
    return new CliError(ENV_FILE_INVALID, `${this.#file}:${line}: ${problem}`);
  }
}

function isBlank(char: string | undefined): boolean {
  return char === ' ' || char === '\t';
}

function trimBlanks(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

function countNewlines(text: string): number {
  let count = 0;
  for (const char of text) if (char === '\n') count++;
  return count;
}
