import { isUtf8 } from 'node:buffer';
import { CliError } from './errors.js';

/**
 * Output formats of `stillvault get --format env|sh|json`. Each returns the
 * bytes to write to stdout, ending in a newline; the caller wipes them.
 *
 * Both shell formats survive `eval` in sh, dash and bash for any value
 * without a NUL byte (a C string, so an environment variable, cannot hold
 * one). `eval` assigns the variable and runs nothing from the value.
 * - env: `NAME="..."`, escaping \ " $ and ` with a backslash, as POSIX
 *   double quotes require. The .env parser reads the same line back.
 * - sh: `export NAME='...'`, where each ' becomes '\'' (POSIX single quotes
 *   keep every other byte as it is).
 * Bytes that are not valid UTF-8 pass through both unchanged. The env format
 * relies on `\` never being part of a multibyte character, which holds for
 * UTF-8 and single-byte locales but not for GBK or Big5; use sh there.
 */

export type OutputFormat = 'env' | 'sh' | 'json';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['env', 'sh', 'json'];

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BACKSLASH = 0x5c;
const DOUBLE_QUOTE = 0x22;
const DOLLAR = 0x24;
const BACKTICK = 0x60;
const SINGLE_QUOTE = 0x27;
const ESCAPED_SINGLE_QUOTE = Buffer.from("'\\''");

/** Formats one variable in `format`. Throws CliError('invalid_name') or CliError('value_contains_nul'). */
export function formatSecret(format: OutputFormat, name: string, value: Buffer): Buffer {
  switch (format) {
    case 'env':
      return formatEnv(name, value);
    case 'sh':
      return formatSh(name, value);
    case 'json':
      return formatJson(name, value);
  }
}

/** `NAME="value"` with POSIX double-quote escaping. */
export function formatEnv(name: string, value: Buffer): Buffer {
  checkShellVariable(name, value);
  const parts: Buffer[] = [Buffer.from(`${name}="`)];
  let copied = 0;
  for (let i = 0; i < value.length; i++) {
    const byte = value[i];
    if (byte === BACKSLASH || byte === DOUBLE_QUOTE || byte === DOLLAR || byte === BACKTICK) {
      parts.push(value.subarray(copied, i), Buffer.from([BACKSLASH, byte]));
      copied = i + 1;
    }
  }
  parts.push(value.subarray(copied), Buffer.from('"\n'));
  return Buffer.concat(parts);
}

/** `export NAME='value'` with POSIX single-quote escaping. */
export function formatSh(name: string, value: Buffer): Buffer {
  checkShellVariable(name, value);
  const parts: Buffer[] = [Buffer.from(`export ${name}='`)];
  let copied = 0;
  for (let i = 0; i < value.length; i++) {
    if (value[i] === SINGLE_QUOTE) {
      parts.push(value.subarray(copied, i), ESCAPED_SINGLE_QUOTE);
      copied = i + 1;
    }
  }
  parts.push(value.subarray(copied), Buffer.from("'\n"));
  return Buffer.concat(parts);
}

/**
 * `{"name":...,"value":...}` when the value is valid UTF-8, else
 * `{"name":...,"valueBase64":...}`, so a reader of `.value` never gets base64
 * text by mistake.
 */
export function formatJson(name: string, value: Buffer): Buffer {
  const body = isUtf8(value) ? { name, value: value.toString('utf8') } : { name, valueBase64: value.toString('base64') };
  // NOTE: the JSON text is a JavaScript string, which cannot be wiped.
  return Buffer.from(`${JSON.stringify(body)}\n`);
}

function checkShellVariable(name: string, value: Buffer): void {
  if (!SHELL_NAME.test(name)) {
    throw new CliError('invalid_name', `${JSON.stringify(name)} is not a valid shell variable name`, {
      hint: 'use letters, digits and _, not starting with a digit',
    });
  }
  if (value.includes(0)) {
    throw new CliError('value_contains_nul', `the value of ${name} contains a NUL byte, which a shell variable cannot hold`, {
      hint: 'use --format json, which encodes such values in base64',
    });
  }
}
