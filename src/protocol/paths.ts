import { ProtocolError } from './errors.js';

/**
 * Secret paths and the globs policies use to name them.
 *
 * A path is one or more segments of [A-Za-z0-9._-] joined by '/', with no
 * empty, '.' or '..' segment and at most 256 characters. A glob has the same
 * form, and a segment may also contain '*' (any run of characters inside one
 * segment) or be exactly '**' (zero or more whole segments). Matching works on
 * segments and characters directly and builds no regular expression, so a
 * glob cannot inject pattern syntax.
 */

export const MAX_PATH_LENGTH = 256;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;
const GLOB_SEGMENT = /^[A-Za-z0-9._*-]+$/;

function splitChecked(text: unknown, name: string, segmentPattern: RegExp): string[] {
  if (typeof text !== 'string') throw new ProtocolError('invalid_path', `${name} must be a string`);
  if (text.length === 0 || text.length > MAX_PATH_LENGTH) {
    throw new ProtocolError('invalid_path', `${name} must be 1 to ${MAX_PATH_LENGTH} characters, got ${text.length}`);
  }
  const segments = text.split('/');
  for (const segment of segments) {
    if (!segmentPattern.test(segment) || segment === '.' || segment === '..') {
      throw new ProtocolError('invalid_path', `${name} ${JSON.stringify(text)} has an invalid segment ${JSON.stringify(segment)}`);
    }
  }
  return segments;
}

/** Checks a secret path and returns it. Throws ProtocolError('invalid_path'). */
export function checkSecretPath(path: unknown, name = 'path'): string {
  splitChecked(path, name, PATH_SEGMENT);
  return path as string;
}

/** Checks a path glob and returns it. Throws ProtocolError('invalid_path'). */
export function checkPathGlob(glob: unknown, name = 'glob'): string {
  const segments = splitChecked(glob, name, GLOB_SEGMENT);
  for (const segment of segments) {
    if (segment.includes('**') && segment !== '**') {
      throw new ProtocolError('invalid_path', `${name} ${JSON.stringify(glob)}: '**' must be a whole segment`);
    }
  }
  return glob as string;
}

/**
 * Reports whether `path` matches `glob`. Both must be valid (see
 * checkSecretPath and checkPathGlob); an invalid one never matches.
 */
export function matchPathGlob(glob: string, path: string): boolean {
  let globSegments: string[];
  let pathSegments: string[];
  try {
    globSegments = checkPathGlob(glob).split('/');
    pathSegments = checkSecretPath(path).split('/');
  } catch {
    return false;
  }
  return matchSegments(globSegments, 0, pathSegments, 0, new Map());
}

function matchSegments(glob: string[], g: number, path: string[], p: number, memo: Map<number, boolean>): boolean {
  const key = g * (path.length + 1) + p;
  const cached = memo.get(key);
  if (cached !== undefined) return cached;

  let result: boolean;
  const segment = glob[g];
  if (segment === undefined) {
    result = p === path.length;
  } else if (segment === '**') {
    // '**' takes zero segments, or one segment and stays in place.
    result = matchSegments(glob, g + 1, path, p, memo) || (p < path.length && matchSegments(glob, g, path, p + 1, memo));
  } else {
    const pathSegment = path[p];
    result = pathSegment !== undefined && matchSegment(segment, pathSegment) && matchSegments(glob, g + 1, path, p + 1, memo);
  }
  memo.set(key, result);
  return result;
}

/** Matches one segment where '*' stands for any run of characters (greedy with backtracking). */
function matchSegment(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starT = t;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
