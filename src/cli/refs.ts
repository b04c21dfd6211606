import { checkSecretPath } from '../protocol/paths.js';
import { CliError } from './errors.js';

/**
 * Secret references: an environment value that is exactly `sv://PATH`, and
 * `{{ sv://PATH }}` placeholders in templates. PATH follows the protocol's
 * secret path rules: segments of [A-Za-z0-9._-] joined by '/', no empty, '.'
 * or '..' segment, at most 256 characters.
 */

export const SECRET_REF_PREFIX = 'sv://';

/** One `{{ sv://PATH }}` placeholder: byte offsets into the template, end exclusive. */
export interface TemplateRef {
  path: string;
  start: number;
  end: number;
  /** 1-based line of the placeholder. */
  line: number;
}

// Matches the opening of every placeholder; the rest is parsed by hand so a
// malformed one is reported, never passed through as text.
const PLACEHOLDER_OPEN = /\{\{[ \t]*sv:\/\//g;
const PATH_CHAR = /[A-Za-z0-9._/-]/;

/**
 * Returns the secret path of an environment value that is a reference, or
 * null when the value does not start with `sv://` (it then passes through
 * unchanged). Throws CliError('secret_ref_invalid') for `sv://` followed by an
 * invalid path.
 */
export function parseSecretRef(value: string): string | null {
  if (!value.startsWith(SECRET_REF_PREFIX)) return null;
  const path = value.slice(SECRET_REF_PREFIX.length);
  checkPath(path, 'reference');
  return path;
}

/** Finds every placeholder in `template`, in order. Throws CliError('secret_ref_invalid') for a malformed one. */
export function findTemplateRefs(template: Buffer): TemplateRef[] {
  // latin1 maps each byte to one UTF-16 unit, so string indexes are byte offsets.
  const text = template.toString('latin1');
  const refs: TemplateRef[] = [];

  for (const match of text.matchAll(PLACEHOLDER_OPEN)) {
    const start = match.index;
    const line = lineAt(text, start);
    let pos = start + match[0].length;

    const pathStart = pos;
    while (pos < text.length && PATH_CHAR.test(text.charAt(pos))) pos++;
    const path = text.slice(pathStart, pos);
    while (text.charAt(pos) === ' ' || text.charAt(pos) === '\t') pos++;
    if (!text.startsWith('}}', pos)) {
      throw new CliError('secret_ref_invalid', `line ${line}: a {{ sv://... }} placeholder is not closed with "}}" after its path`);
    }
    checkPath(path, `placeholder on line ${line}`);
    refs.push({ path, start, end: pos + 2, line });
  }
  return refs;
}

/**
 * Replaces each placeholder with the value stored for its path. All other bytes
 * are copied unchanged. Throws CliError('secret_ref_unresolved') naming the
 * first path that `values` lacks.
 */
export function renderTemplate(template: Buffer, values: ReadonlyMap<string, Buffer>): Buffer {
  const parts: Buffer[] = [];
  let copied = 0;
  for (const ref of findTemplateRefs(template)) {
    const value = values.get(ref.path);
    if (value === undefined) {
      throw new CliError('secret_ref_unresolved', `line ${ref.line}: no value for sv://${ref.path}`);
    }
    parts.push(template.subarray(copied, ref.start), value);
    copied = ref.end;
  }
  parts.push(template.subarray(copied));
  return Buffer.concat(parts);
}

function checkPath(path: string, where: string): void {
  try {
    checkSecretPath(path, 'secret path');
  } catch (cause) {
    throw new CliError('secret_ref_invalid', `${where}: invalid sv:// path: ${(cause as Error).message}`, {
      hint: 'a path is segments of letters, digits, ".", "_" and "-" joined by "/", at most 256 characters',
      cause,
    });
  }
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}
