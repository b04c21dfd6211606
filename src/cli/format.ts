import type { CliIo } from './command.js';
import { usageError } from './errors.js';

/**
 * Output helpers for listing commands (a plain table for people, or JSON for
 * scripts with --format json) and the duration syntax options use.
 */

export type OutputFormat = 'table' | 'json';

/** Reads the --format option: `table` (default) or `json`. */
export function parseFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'table') return 'table';
  if (value === 'json') return 'json';
  throw usageError(`invalid --format ${JSON.stringify(value)}`, 'use --format table or --format json');
}

/** Writes rows as an aligned table with a header line, or a note on stderr when there are none. */
export function writeTable(io: CliIo, headers: string[], rows: string[][], emptyNote: string): void {
  if (rows.length === 0) {
    io.stderr.write(`${emptyNote}\n`);
    return;
  }
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string => cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd();
  io.stdout.write(`${line(headers)}\n`);
  for (const row of rows) io.stdout.write(`${line(row)}\n`);
}

/** Writes one JSON document on stdout. */
export function writeJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Parses a duration into seconds: a number with a unit (30s, 15m, 2h, 1d) or
 * a bare number of seconds (600). Throws a usage error naming `option` when
 * the text is invalid, zero, or above `maxSeconds`.
 */
export function parseDuration(text: string, option: string, maxSeconds?: number): number {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  const digits = match?.[1];
  if (match === null || digits === undefined) {
    throw usageError(`invalid ${option} ${JSON.stringify(text)}: expected seconds or a number with a unit, for example 600, 30s, 15m, 2h or 1d`);
  }
  const unit = match[2] === '' || match[2] === undefined ? 's' : match[2];
  const seconds = Number(digits) * (DURATION_UNITS[unit] ?? 1);
  if (seconds <= 0) throw usageError(`${option} must be longer than zero`);
  if (maxSeconds !== undefined && seconds > maxSeconds) {
    throw usageError(`${option} ${text} is longer than the maximum of ${formatDuration(maxSeconds)}`);
  }
  return seconds;
}

/** Maximum lease an agent may request: 30 days in seconds, the protocol's limit for a policy's maximum lease. */
export const MAX_LEASE_SECONDS = 30 * 86_400;

/** Parses an agent command's `--lease` option; undefined when it was not given. */
export function parseLeaseOption(text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseDuration(text, '--lease', MAX_LEASE_SECONDS);
}

/** Formats seconds the way parseDuration reads them, choosing the largest exact unit. */
export function formatDuration(seconds: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    const size = DURATION_UNITS[unit] ?? 1;
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** Formats Unix seconds as an ISO 8601 UTC time without milliseconds. */
export function formatTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
